package reco.pyflink;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.functions.python.DataStreamPythonFunctionInfo;
import org.apache.flink.streaming.api.operators.python.process.AbstractExternalDataStreamPythonFunctionOperator;

/** PyFlink's process operator (not keyed), with bundles that end on time ({@link BundleTime}). */
public class ExternalPythonProcessOperator<IN, OUT>
        extends org.apache.flink.streaming.api.operators.python.process.ExternalPythonProcessOperator<IN, OUT> {

    private static final long serialVersionUID = 1L;

    public ExternalPythonProcessOperator(
            Configuration config, DataStreamPythonFunctionInfo function, TypeInformation<IN> inputType,
            TypeInformation<OUT> outputType) {
        super(config, function, inputType, outputType);
    }

    @Override
    protected void invokeFinishBundle() throws Exception {
        lastFinishBundleTime = BundleTime.finish(
                getConfiguration(), getProcessingTimeService(), super::invokeFinishBundle, () -> lastFinishBundleTime);
    }

    @Override
    public <T> AbstractExternalDataStreamPythonFunctionOperator<T> copy(
            DataStreamPythonFunctionInfo function, TypeInformation<T> outputType) {
        return new ExternalPythonProcessOperator<>(getConfiguration(), function, getInputTypeInfo(), outputType);
    }
}
