package reco.pyflink;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.streaming.api.functions.python.DataStreamPythonFunctionInfo;
import org.apache.flink.streaming.api.operators.python.process.AbstractExternalDataStreamPythonFunctionOperator;

/**
 * PyFlink's keyed process operator, with the timers that Python registered in the bundle
 * finished for a checkpoint barrier included in that checkpoint.
 *
 * <p>PyFlink 2.2.1 receives a Python timer registration on a gRPC thread and registers it
 * later from the task's mailbox; only a watermark drains the pending ones. At a barrier the
 * operator finishes its bundle (the bundle's keyed state is written) and snapshots before
 * those mails run, so a restore could bring back state whose timer was never registered.
 * Registering the pending timers after the bundle and before the snapshot fixes that.
 *
 * <p>It also keeps its Python worker's state requests off its state backend once closed
 * ({@link StateRequestGuard}): a cancelled task's RocksDB crashed the JVM otherwise; and ends
 * its bundles on time ({@link BundleTime}).
 */
public class ExternalPythonKeyedProcessOperator<OUT>
        extends org.apache.flink.streaming.api.operators.python.process.ExternalPythonKeyedProcessOperator<OUT> {

    private static final long serialVersionUID = 1L;

    private final TypeSerializer namespaceSerializer;

    private transient StateRequestGuard stateRequests;

    public ExternalPythonKeyedProcessOperator(
            Configuration config, DataStreamPythonFunctionInfo function, RowTypeInfo inputType,
            TypeInformation<OUT> outputType) {
        this(config, function, inputType, outputType, VoidNamespaceSerializer.INSTANCE);
    }

    public ExternalPythonKeyedProcessOperator(
            Configuration config, DataStreamPythonFunctionInfo function, RowTypeInfo inputType,
            TypeInformation<OUT> outputType, TypeSerializer namespaceSerializer) {
        super(config, function, inputType, outputType, namespaceSerializer);
        this.namespaceSerializer = namespaceSerializer;
    }

    @Override
    public void open() throws Exception {
        super.open();
        stateRequests = StateRequestGuard.install(
                pythonFunctionRunner, getRuntimeContext().getTaskInfo().getTaskNameWithSubtasks());
    }

    @Override
    public void close() throws Exception {
        if (stateRequests != null) {
            stateRequests.close();   // before super.close() disposes the state backend
        }
        super.close();
    }

    @Override
    protected void invokeFinishBundle() throws Exception {
        lastFinishBundleTime = BundleTime.finish(
                getConfiguration(), getProcessingTimeService(), super::invokeFinishBundle, () -> lastFinishBundleTime);
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        super.prepareSnapshotPreBarrier(checkpointId);
        drainUnregisteredTimers();
    }

    @Override
    public <T> AbstractExternalDataStreamPythonFunctionOperator<T> copy(
            DataStreamPythonFunctionInfo function, TypeInformation<T> outputType) {
        return new ExternalPythonKeyedProcessOperator<>(
                getConfiguration(), function, (RowTypeInfo) getInputTypeInfo(), outputType, namespaceSerializer);
    }
}
