/*
 * A JNI library built the way netty-tcnative-boringssl-static is: the TLS library linked
 * statically and whole into one shared object (here Debian's libssl.a and libcrypto.a; there
 * BoringSSL), its own symbols hidden, named libnetty_tcnative_linux_x86_64.so and shipped under
 * META-INF/native/ in a jar. Netty's NativeLibraryLoader copies it to /tmp under a random name,
 * loads it and deletes it: the open, deleted mapping is the ghost file CRIU has to dump.
 *
 * The functions are real work done by the linked library, called on every tick of the
 * application: a digest that Java checks against its own, and a TLS context made once.
 */
#include <jni.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

static SSL_CTX *context;

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved)
{
	(void)vm;
	(void)reserved;
	if (OPENSSL_init_ssl(0, NULL) != 1)
		return JNI_ERR;
	return JNI_VERSION_1_8;
}

/* The version of the TLS library inside this shared object. */
JNIEXPORT jstring JNICALL Java_org_criumatrix_nettyjni_TcNative_version(JNIEnv *env, jclass cls)
{
	(void)cls;
	return (*env)->NewStringUTF(env, OpenSSL_version(OPENSSL_VERSION));
}

/* Makes the TLS context once (as tcnative's SSLContext.make does); true when it exists. */
JNIEXPORT jboolean JNICALL Java_org_criumatrix_nettyjni_TcNative_makeContext(JNIEnv *env, jclass cls)
{
	(void)env;
	(void)cls;
	if (context == NULL)
		context = SSL_CTX_new(TLS_method());
	return context != NULL ? JNI_TRUE : JNI_FALSE;
}

/* SHA-256 of `input`, by the linked library; null if it fails. */
JNIEXPORT jbyteArray JNICALL Java_org_criumatrix_nettyjni_TcNative_sha256(JNIEnv *env, jclass cls,
									    jbyteArray input)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int length = 0;
	jsize size = (*env)->GetArrayLength(env, input);
	jbyte *bytes = (*env)->GetByteArrayElements(env, input, NULL);
	jbyteArray result = NULL;
	int ok;

	(void)cls;
	if (bytes == NULL)
		return NULL;
	ok = EVP_Digest(bytes, (size_t)size, digest, &length, EVP_sha256(), NULL);
	(*env)->ReleaseByteArrayElements(env, input, bytes, JNI_ABORT);
	if (ok != 1)
		return NULL;
	result = (*env)->NewByteArray(env, (jsize)length);
	if (result != NULL)
		(*env)->SetByteArrayRegion(env, result, 0, (jsize)length, (const jbyte *)digest);
	return result;
}
