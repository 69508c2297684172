"""A gRPC PredictionService on 127.0.0.1 that wraps a loaded SavedModel.

Only for the tests: it speaks TensorFlow Serving's PredictionService protocol so that a real
``PredictRequest`` built with ``tf.make_tensor_proto`` can be answered here, where no
``tensorflow_model_server`` binary can be installed. It is not a serving product.
"""

from __future__ import annotations

from concurrent import futures

import grpc
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


class SavedModelPredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, export_dir: str, name: str):
        self.loaded = tf.saved_model.load(export_dir)
        self.name = name

    def Predict(self, request, context):
        if request.model_spec.name != self.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"model {request.model_spec.name!r} unknown")
        signature = self.loaded.signatures[request.model_spec.signature_name or "serving_default"]
        inputs = {key: tf.constant(tf.make_ndarray(proto)) for key, proto in request.inputs.items()}
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        for key, value in signature(**inputs).items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response


def start_server(export_dir: str, name: str) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        SavedModelPredictionService(export_dir, name), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port
