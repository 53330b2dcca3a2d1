package reco.pyflink;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.functions.python.DataStreamPythonFunctionInfo;
import org.apache.flink.streaming.api.operators.python.process.AbstractExternalDataStreamPythonFunctionOperator;
import org.apache.flink.types.Row;

/** PyFlink's keyed two-input operator with the same fixes as {@link ExternalPythonKeyedProcessOperator}. */
public class ExternalPythonKeyedCoProcessOperator<OUT>
        extends org.apache.flink.streaming.api.operators.python.process.ExternalPythonKeyedCoProcessOperator<OUT> {

    private static final long serialVersionUID = 1L;

    private transient StateRequestGuard stateRequests;

    public ExternalPythonKeyedCoProcessOperator(
            Configuration config, DataStreamPythonFunctionInfo function, TypeInformation<Row> inputType1,
            TypeInformation<Row> inputType2, TypeInformation<OUT> outputType) {
        super(config, function, inputType1, inputType2, outputType);
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
        return new ExternalPythonKeyedCoProcessOperator<>(
                getConfiguration(), function, getLeftInputType(), getRightInputType(), outputType);
    }
}
