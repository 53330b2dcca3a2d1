package reco.pyflink;

import java.util.function.LongSupplier;

import org.apache.flink.api.common.operators.ProcessingTimeService;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.python.PythonOptions;
import org.apache.flink.util.function.ThrowingRunnable;

/**
 * Ends each Python bundle within {@code python.fn-execution.bundle.time} of the previous one's
 * end, as that option says, instead of within twice that.
 *
 * <p>PyFlink 2.2.1 checks the bundle time on a timer of that period and finishes the bundle
 * when at least a period has passed since the last finish, taking the time of the last finish
 * after the bundle's results came back. The next tick comes a period after the previous one,
 * less than a period after that time, so it finds the bundle too young, and bundles end every
 * second tick: a record waits up to two periods in each Python operator. Counting a finish
 * from half a period before it began makes the next tick end the bundle, for any lateness of
 * the ticks below half a period.
 */
final class BundleTime {

    private BundleTime() {}

    /**
     * Runs an operator's {@code invokeFinishBundle} ({@code finish}) and returns the last
     * finish time to keep for PyFlink's check ({@code lastFinish} reads the operator's).
     */
    static long finish(Configuration config, ProcessingTimeService time, ThrowingRunnable<Exception> finish,
                       LongSupplier lastFinish) throws Exception {
        long started = time.getCurrentProcessingTime();
        long before = lastFinish.getAsLong();
        finish.run();
        long after = lastFinish.getAsLong();
        if (after == before) {
            return after;   // an empty bundle: nothing finished
        }
        return started - Math.max(1, config.get(PythonOptions.MAX_BUNDLE_TIME_MILLS)) / 2;
    }
}
