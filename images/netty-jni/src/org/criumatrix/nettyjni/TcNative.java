package org.criumatrix.nettyjni;

/** The native methods of libnetty_tcnative_linux_x86_64.so (see native/tcnative.c). */
final class TcNative {
    private TcNative() {}

    static native String version();

    static native boolean makeContext();

    static native byte[] sha256(byte[] input);
}
