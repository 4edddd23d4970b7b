import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A daemon with long-lived child processes. It keeps two children for its whole life:
 *
 * - an echo worker (`cat`) it talks to through pipes: every tick, the daemon sends the next number
 *   and counts it only once the worker sent it back, so the counter grows only while the worker is
 *   alive and still connected to the JVM;
 * - an idle helper (`sleep`), a child that does nothing until it is killed.
 *
 * The count lives in the JVM's memory and is rewritten to a file as `ID COUNT`, after a random
 * identity drawn once at start: a daemon started again from scratch instead of restored has
 * another identity and starts over at 1, and the harness sees both.
 */
public final class Daemon {
    public static void main(String[] args) throws Exception {
        Path ticks = Path.of(args.length > 0 ? args[0] : "/tmp/ticks");
        Process idle = new ProcessBuilder("sleep", "infinity").inheritIO().start();
        Process echo = new ProcessBuilder("cat").redirectError(ProcessBuilder.Redirect.INHERIT).start();
        Writer toWorker = new OutputStreamWriter(echo.getOutputStream(), StandardCharsets.US_ASCII);
        BufferedReader fromWorker =
                new BufferedReader(new InputStreamReader(echo.getInputStream(), StandardCharsets.US_ASCII));
        String identity = java.util.UUID.randomUUID().toString();
        long count = 0;
        while (idle.isAlive()) {
            long next = count + 1;
            toWorker.write(next + "\n");
            toWorker.flush();
            String back = fromWorker.readLine();
            if (back == null) {
                throw new IOException("the echo worker closed its pipe after " + count + " ticks");
            }
            if (Long.parseLong(back.trim()) != next) {
                throw new IOException("the echo worker sent back " + back + " instead of " + next);
            }
            count = next;
            Files.writeString(ticks, identity + " " + count + "\n", StandardCharsets.US_ASCII, StandardOpenOption.CREATE,
                    StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE);
            Thread.sleep(100);
        }
        throw new IOException("the idle helper died (exit " + idle.exitValue() + ")");
    }
}
