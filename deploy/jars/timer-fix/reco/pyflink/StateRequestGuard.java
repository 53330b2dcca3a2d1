package reco.pyflink;

import java.io.IOException;
import java.lang.reflect.Field;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.beam.model.fnexecution.v1.BeamFnApi;
import org.apache.beam.runners.fnexecution.state.StateRequestHandler;
import org.apache.flink.python.PythonFunctionRunner;
import org.apache.flink.streaming.api.runners.python.beam.BeamPythonFunctionRunner;
import org.apache.flink.util.ResourceGuard;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps a Python worker's state requests off a keyed state backend that its operator has
 * disposed.
 *
 * <p>In process mode the Python workers of a slot share one process, and a cancelled operator
 * closes its runner without waiting for the bundle that process is still working on. That
 * bundle's state requests go on arriving on a gRPC thread after the operator has disposed its
 * state backend: with RocksDB, a read or a new column family on the closed database crashes
 * the whole JVM (SIGSEGV in {@code RocksDB.createColumnFamily} from
 * {@code BeamStateRequestHandler}), and every job of that TaskManager with it, instead of the
 * failover the job is in the middle of.
 *
 * <p>The guard wraps the runner's state request handler: each request holds a lease while it
 * runs, and {@link #close()}, called by the operator before its backend is disposed, waits for
 * the requests in flight and refuses the later ones with an error (the worker's bundle fails,
 * as the cancelled task does anyway).
 */
final class StateRequestGuard implements StateRequestHandler {

    private static final Logger LOG = LoggerFactory.getLogger(StateRequestGuard.class);

    private final StateRequestHandler requests;
    private final String owner;
    private final ResourceGuard open = new ResourceGuard();
    private final AtomicBoolean refused = new AtomicBoolean();

    private StateRequestGuard(StateRequestHandler requests, String owner) {
        this.requests = requests;
        this.owner = owner;
    }

    /**
     * Wraps {@code runner}'s state request handler (call after the runner's open, before its
     * first bundle); {@code owner} names the operator in the log.
     */
    static StateRequestGuard install(PythonFunctionRunner runner, String owner) throws ReflectiveOperationException {
        Field field = BeamPythonFunctionRunner.class.getDeclaredField("stateRequestHandler");
        field.setAccessible(true);
        StateRequestGuard guard = new StateRequestGuard((StateRequestHandler) field.get(runner), owner);
        field.set(runner, guard);
        return guard;
    }

    @Override
    public CompletionStage<BeamFnApi.StateResponse.Builder> handle(BeamFnApi.StateRequest request) throws Exception {
        ResourceGuard.Lease lease;
        try {
            lease = open.acquireResource();
        } catch (IOException closed) {
            if (refused.compareAndSet(false, true)) {
                LOG.warn("{}: refused a state request from its Python worker after the operator closed", owner);
            }
            throw new IllegalStateException(
                    "a state request from the Python worker after its operator closed (the task is ending); refused");
        }
        try (ResourceGuard.Lease held = lease) {
            return requests.handle(request);
        }
    }

    @Override
    public Iterable<BeamFnApi.ProcessBundleRequest.CacheToken> getCacheTokens() {
        return requests.getCacheTokens();
    }

    /** Waits for the requests in flight; refuses every later one. */
    void close() {
        open.closeUninterruptibly();
    }
}
