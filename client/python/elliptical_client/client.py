"""A thin, typed layer over the generated gRPC stubs (elliptical.v1.InferenceService)."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Union

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# The generated modules import each other as `elliptical.v1.*` (their proto package).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_generated"))
from elliptical.v1 import (classify_pb2, generate_pb2, image_pb2, inference_service_pb2_grpc,  # noqa: E402
                           models_pb2, segment_pb2)

ImageInput = Union[bytes, str, os.PathLike]


class ClientError(Exception):
    """A failed call: `code` is the gRPC status name (NOT_FOUND, INVALID_ARGUMENT, ...)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _wrap(error: grpc.RpcError) -> ClientError:
    return ClientError(error.code().name, error.details() or "")


@dataclass
class ModelInfo:
    name: str
    family: str  # image_classifier | segmenter | language_model
    state: str   # loading | ready | failed
    reason: str = ""


@dataclass
class ClassScore:
    label: str
    probability: float
    class_id: int


@dataclass
class SegmentationMask:
    width: int
    height: int
    class_ids: List[int]  # row-major, width * height
    labels: List[str]


@dataclass
class GenerationSummary:
    finish_reason: str
    prompt_tokens: int
    generated_tokens: int
    time_to_first_token_us: int
    total_us: int


@dataclass
class Generation:
    """Iterate for the text pieces as they arrive; `summary` is set once the stream ends."""
    _stream: object
    summary: Optional[GenerationSummary] = None
    token_ids: List[int] = field(default_factory=list)

    def __iter__(self) -> Iterator[str]:
        try:
            for message in self._stream:
                if message.HasField("token"):
                    if message.token.text or not message.HasField("summary"):
                        self.token_ids.append(message.token.id)
                    yield message.token.text
                if message.HasField("summary"):
                    s = message.summary
                    self.summary = GenerationSummary(
                        generate_pb2.FinishReason.Name(s.finish_reason).replace("FINISH_REASON_", "").lower(),
                        s.prompt_tokens, s.generated_tokens, s.time_to_first_token_us, s.total_us)
        except grpc.RpcError as e:
            raise _wrap(e) from None

    def text(self) -> str:
        """Consumes the stream and returns the whole text."""
        return "".join(self)

    def cancel(self) -> None:
        self._stream.cancel()


def _image(source: ImageInput) -> image_pb2.Image:
    if isinstance(source, (bytes, bytearray)):
        return image_pb2.Image(encoded=bytes(source))
    with open(source, "rb") as f:
        return image_pb2.Image(encoded=f.read())


class Client:
    """Calls one server. Every method raises ClientError on failure."""

    def __init__(self, address: str = "localhost:8500", timeout_s: float = 30.0):
        self._channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)])
        self._stub = inference_service_pb2_grpc.InferenceServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self.timeout_s = timeout_s

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def health(self, service: str = "") -> str:
        """SERVING or NOT_SERVING; `service` may be a model name."""
        try:
            r = self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout_s)
        except grpc.RpcError as e:
            raise _wrap(e) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

    def list_models(self) -> List[ModelInfo]:
        try:
            r = self._stub.ListModels(models_pb2.ListModelsRequest(), timeout=self.timeout_s)
        except grpc.RpcError as e:
            raise _wrap(e) from None
        return [ModelInfo(m.name, models_pb2.ModelFamily.Name(m.family).replace("MODEL_FAMILY_", "").lower(),
                          models_pb2.ModelState.Name(m.status.state).replace("MODEL_STATE_", "").lower(),
                          m.status.reason) for m in r.models]

    def metadata(self, model: str) -> models_pb2.GetModelMetadataResponse:
        try:
            return self._stub.GetModelMetadata(models_pb2.GetModelMetadataRequest(model_name=model),
                                               timeout=self.timeout_s)
        except grpc.RpcError as e:
            raise _wrap(e) from None

    def classify(self, model: str, images: Sequence[ImageInput], top_k: int = 5,
                 stats: bool = False) -> List[List[ClassScore]]:
        """The top_k classes of each image, best first."""
        request = classify_pb2.ClassifyRequest(model_name=model, images=[_image(i) for i in images],
                                               top_k=top_k, return_attention_stats=stats)
        try:
            r = self._stub.Classify(request, timeout=self.timeout_s)
        except grpc.RpcError as e:
            raise _wrap(e) from None
        return [[ClassScore(c.label, c.probability, c.class_id) for c in result.classes]
                for result in r.classifications]

    def segment(self, model: str, image: ImageInput) -> SegmentationMask:
        request = segment_pb2.SegmentRequest(model_name=model, images=[_image(image)])
        try:
            r = self._stub.Segment(request, timeout=self.timeout_s)
        except grpc.RpcError as e:
            raise _wrap(e) from None
        m = r.masks[0]
        if m.WhichOneof("class_ids") == "class_ids_u16":
            raw = m.class_ids_u16
            ids = [raw[i] | raw[i + 1] << 8 for i in range(0, len(raw), 2)]
        else:
            ids = list(m.class_ids_u8)
        return SegmentationMask(m.width_px, m.height_px, ids, list(m.labels))

    def generate(self, model: str, prompt: str, max_new_tokens: int = 0, temperature: float = 0.0,
                 top_k: int = 0, top_p: float = 0.0, seed: int = 0,
                 stop: Sequence[str] = ()) -> Generation:
        """Starts a generation; iterate the result for text pieces as they are produced."""
        request = generate_pb2.GenerateRequest(model_name=model, prompt=prompt, max_new_tokens=max_new_tokens,
                                               temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                                               stop=list(stop))
        return Generation(self._stub.Generate(request, timeout=self.timeout_s))
