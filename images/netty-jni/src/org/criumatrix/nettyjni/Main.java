package org.criumatrix.nettyjni;

import io.netty.util.internal.NativeLibraryLoader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;

/**
 * Loads its JNI library the way netty-tcnative does, through Netty's own NativeLibraryLoader:
 * the library is a resource of this jar (META-INF/native/libnetty_tcnative_linux_x86_64.so), and
 * the loader copies it to /tmp under a random name, loads it and deletes the copy.
 *
 * Then it counts. Every tick hashes the next number with the native library and checks the digest
 * against Java's own SHA-256; only a matching tick is counted. So the counter grows only while the
 * deleted, mapped library still works, and it lives in the JVM's memory, written as `ID COUNT`
 * after a random identity drawn once at start: a JVM started again instead of restored has
 * another identity and starts over at 1, and the harness sees both.
 */
public final class Main {
    private static final String LIBRARY = "netty_tcnative_linux_x86_64";

    public static void main(String[] args) throws Exception {
        Path ticks = Path.of(args.length > 0 ? args[0] : "/tmp/ticks");
        Path loaded = Path.of(args.length > 1 ? args[1] : "/tmp/native-library");
        NativeLibraryLoader.load(LIBRARY, Main.class.getClassLoader());
        if (!TcNative.makeContext()) {
            throw new IOException("the native library could not make a TLS context");
        }
        List<String> mappings = mappingsOf(LIBRARY);
        if (mappings.isEmpty()) {
            throw new IOException("lib" + LIBRARY + " is not mapped after loading");
        }
        // What the harness and a person read: the library's version and its mapping, `(deleted)`
        // once the loader removed the copy.
        String report = TcNative.version() + "\n" + String.join("\n", mappings) + "\n";
        write(loaded, report);
        System.out.print(report);
        System.out.flush();

        MessageDigest java = MessageDigest.getInstance("SHA-256");
        String identity = UUID.randomUUID().toString();
        long count = 0;
        while (true) {
            long next = count + 1;
            byte[] input = ("tick " + next).getBytes(StandardCharsets.US_ASCII);
            byte[] digest = TcNative.sha256(input);
            if (digest == null || !Arrays.equals(digest, java.digest(input))) {
                throw new IOException("the native SHA-256 of tick " + next + " differs from Java's");
            }
            count = next;
            write(ticks, identity + " " + count + "\n");
            Thread.sleep(100);
        }
    }

    /** The lines of /proc/self/maps that map the library (one per segment). */
    private static List<String> mappingsOf(String name) throws IOException {
        return Files.readAllLines(Path.of("/proc/self/maps")).stream()
                .filter(line -> line.contains("/lib" + name))
                .toList();
    }

    private static void write(Path file, String text) throws IOException {
        Files.writeString(file, text, StandardCharsets.US_ASCII, StandardOpenOption.CREATE,
                StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE);
    }
}
