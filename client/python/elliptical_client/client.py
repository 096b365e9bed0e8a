"""A thin, typed layer over the generated gRPC stubs (elliptical.v1.InferenceService)."""
from __future__ import annotations

import array
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Union

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ._generated.elliptical.v1 import (attention_stats_pb2, classify_pb2, generate_pb2, image_pb2,
                                       inference_service_pb2_grpc, models_pb2, repository_pb2, score_pb2,
                                       segment_pb2)

ImageInput = Union[bytes, str, "os.PathLike[str]"]
"""An encoded image (PNG, JPEG or WebP): its bytes, or the path of its file."""

PemInput = Union[bytes, str, "os.PathLike[str]"]
"""A PEM certificate or key: its bytes, or the path of its file."""


class ClientError(Exception):
    """A failed call: `code` is the gRPC status name (NOT_FOUND, INVALID_ARGUMENT, UNAVAILABLE, ...),
    `message` the server's explanation."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _wrap(error: grpc.RpcError) -> ClientError:
    return ClientError(error.code().name, error.details() or "")


def _enum_name(enum, value: int, prefix: str) -> str:
    return enum.Name(value).replace(prefix, "").lower()


@dataclass
class ModelInfo:
    name: str
    family: str  # image_classifier | segmenter | language_model
    state: str   # loading | ready | failed | unavailable | unloading
    reason: str = ""  # why it is not ready
    version: int = 0  # the version requests get by default (0: the model has none)
    ready_versions: List[int] = field(default_factory=list)  # newest first


@dataclass
class ModelVersion:
    """One version of one model in the repository (repository_index(), load_model())."""
    name: str
    version: int  # 0: the model has no version (nothing on disk)
    family: str
    state: str    # loading | ready | failed | unavailable | unloading
    reason: str = ""
    load_ms: float = 0.0    # once ready: reading the weights and building the model
    warmup_ms: float = 0.0  # once ready: the warm-up before it turned ready


def _version(m) -> ModelVersion:
    return ModelVersion(m.name, m.version, _enum_name(models_pb2.ModelFamily, m.family, "MODEL_FAMILY_"),
                        _enum_name(models_pb2.ModelState, m.status.state, "MODEL_STATE_"), m.status.reason,
                        m.load_ms, m.warmup_ms)


@dataclass
class ClassScore:
    label: str
    probability: float
    class_id: int


class Classification(List[ClassScore]):
    """The top classes of one image, best first (a list of ClassScore); `attention_stats` is the
    per-layer AttentionStats message when the call asked for stats, else None."""
    attention_stats: Optional[attention_stats_pb2.AttentionStats] = None


@dataclass
class SegmentationMask:
    width: int
    height: int
    class_ids: List[int]  # row-major, width * height; index into labels
    labels: List[str]


@dataclass
class GenerationSummary:
    finish_reason: str  # length | end_of_sequence | stop_sequence
    prompt_tokens: int
    generated_tokens: int
    time_to_first_token_us: int
    total_us: int


@dataclass
class ScoredToken:
    id: int
    text: str      # what the token adds to the decoded text (they concatenate to it)
    piece: str     # the tokenizer's piece, e.g. "\u2581said" or "</s>"
    logprob: Optional[float]  # natural log of p(token | the tokens before it); None for the first


class Scores(List[ScoredToken]):
    """Every token of a scored text in order (a list of ScoredToken; the appended end-of-sequence
    token last, unless the call asked for none), with the summary the server computed:
    `total_logprob` (the sum over the tokens that have a logprob), `scored_tokens` (how many:
    all but the first) and `perplexity` (exp(-total_logprob / scored_tokens); NaN when
    scored_tokens is 0)."""
    total_logprob: float = 0.0
    scored_tokens: int = 0
    perplexity: float = float("nan")


class Generation:
    """A streaming generation. Iterate it for the text pieces as they arrive (empty pieces, while
    text is held back in case it begins a stop sequence, are skipped); once the stream has ended,
    `summary` is set and `token_ids` holds every generated token. `cancel()` ends it early (the
    iteration then just stops). Iterate it once."""

    def __init__(self, stream):
        self._stream = stream
        self._cancelled = False
        self.summary: Optional[GenerationSummary] = None
        self.token_ids: List[int] = []

    def __iter__(self) -> Iterator[str]:
        try:
            for message in self._stream:
                final = message.HasField("summary")
                if final:
                    # The final message's token, if any, only releases held-back text.
                    if message.HasField("token") and message.token.text:
                        yield message.token.text
                else:
                    # A message carries every token produced while the previous one was sent.
                    tokens = message.tokens or ([message.token] if message.HasField("token") else [])
                    for token in tokens:
                        self.token_ids.append(token.id)
                        if token.text:
                            yield token.text
                if final:
                    s = message.summary
                    self.summary = GenerationSummary(
                        _enum_name(generate_pb2.FinishReason, s.finish_reason, "FINISH_REASON_"),
                        s.prompt_tokens, s.generated_tokens, s.time_to_first_token_us, s.total_us)
        except grpc.RpcError as e:
            if self._cancelled and e.code() == grpc.StatusCode.CANCELLED:
                return
            raise _wrap(e) from None

    def text(self) -> str:
        """Consumes the stream and returns the whole text."""
        return "".join(self)

    def cancel(self) -> None:
        """Cancels the call; the server frees the sequence's slot at its next step."""
        self._cancelled = True
        self._stream.cancel()


def _image(source: ImageInput) -> image_pb2.Image:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return image_pb2.Image(encoded=bytes(source))
    with open(source, "rb") as f:
        return image_pb2.Image(encoded=f.read())


def _pem(source: Optional[PemInput], what: str) -> Optional[bytes]:
    if source is None:
        return None
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    try:
        with open(source, "rb") as f:
            return f.read()
    except OSError as e:
        raise ClientError("INVALID_ARGUMENT", f"{what}: cannot read {source}: {e.strerror}") from None


class Client:
    """Calls one server (`host:port`). Every method raises ClientError on failure; `timeout_s` is
    each call's deadline. Usable as a context manager (closes the channel).

    Plaintext by default. TLS when `tls=True` or any of `tls_ca` (the CA certificates to trust
    for the server; default: the system's), `tls_cert` and `tls_key` (this client's certificate
    and key, for a server that requires mTLS) or `tls_server_name` (the name to expect in the
    server's certificate when it is not the address's host) is given; the PEM arguments take a
    path or the PEM bytes. `token`: a bearer token sent on every call (the server's
    --auth_tokens_file; load_model and unload_model may need one of its --repository_tokens_file);
    a missing or wrong one raises ClientError("UNAUTHENTICATED")."""

    def __init__(self, address: str = "localhost:8500", timeout_s: float = 30.0, *, tls: bool = False,
                 tls_ca: Optional[PemInput] = None, tls_cert: Optional[PemInput] = None,
                 tls_key: Optional[PemInput] = None, tls_server_name: Optional[str] = None,
                 token: Optional[str] = None):
        options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        if (tls_cert is None) != (tls_key is None):
            raise ClientError("INVALID_ARGUMENT", "tls_cert and tls_key go together (mTLS): give both")
        if tls or any(x is not None for x in (tls_ca, tls_cert, tls_key, tls_server_name)):
            credentials = grpc.ssl_channel_credentials(root_certificates=_pem(tls_ca, "tls_ca"),
                                                       private_key=_pem(tls_key, "tls_key"),
                                                       certificate_chain=_pem(tls_cert, "tls_cert"))
            if tls_server_name:
                options.append(("grpc.ssl_target_name_override", tls_server_name))
            self._channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        # Sent as plain metadata rather than call credentials, which gRPC refuses to send over a
        # plaintext channel: a token must also work without TLS (behind a mesh, on loopback).
        self._metadata = (("authorization", f"Bearer {token.strip()}"),) if token else None
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
        """SERVING or NOT_SERVING: the server's ("") or a model's (its name) health."""
        try:
            r = self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout_s,
                                   metadata=self._metadata)
        except grpc.RpcError as e:
            raise _wrap(e) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

    def wait_until_serving(self, timeout_s: float = 60.0) -> None:
        """Waits until the server answers health SERVING (it is NOT_SERVING until a model is ready,
        or every one with --strict_readiness); raises ClientError(DEADLINE_EXCEEDED) after timeout_s."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while True:
            try:
                last = self.health()
                if last == "SERVING":
                    return
            except ClientError as e:
                last = str(e)
            if time.monotonic() >= deadline:
                raise ClientError("DEADLINE_EXCEEDED", f"not SERVING after {timeout_s:g} s (last: {last})")
            time.sleep(0.05)

    def list_models(self) -> List[ModelInfo]:
        """Every model in the server's repository, with its family and load state."""
        try:
            r = self._stub.ListModels(models_pb2.ListModelsRequest(), timeout=self.timeout_s,
                                     metadata=self._metadata)
        except grpc.RpcError as e:
            raise _wrap(e) from None
        return [ModelInfo(m.name, _enum_name(models_pb2.ModelFamily, m.family, "MODEL_FAMILY_"),
                          _enum_name(models_pb2.ModelState, m.status.state, "MODEL_STATE_"), m.status.reason,
                          m.version, list(m.ready_versions))
                for m in r.models]

    def repository_index(self, ready_only: bool = False) -> List[ModelVersion]:
        """Every version of every model in the repository with its state (by name, newest version
        first); `ready_only`: the ready ones only."""
        try:
            r = self._stub.RepositoryIndex(repository_pb2.RepositoryIndexRequest(ready_only=ready_only),
                                           timeout=self.timeout_s, metadata=self._metadata)
        except grpc.RpcError as e:
            raise _wrap(e) from None
        return [_version(m) for m in r.models]

    def load_model(self, model: str, timeout_s: Optional[float] = None) -> List[ModelVersion]:
        """Loads the model (reloads it when loaded: the old version serves until the new one is
        ready) and returns its versions once the load is over. Needs the server's
        --model_control_mode=explicit (else FAILED_PRECONDITION) and a token its
        --repository_access allows (else PERMISSION_DENIED). A load reads the weights and warms
        the model up: `timeout_s` (default: the client's) may need to be longer."""
        try:
            r = self._stub.LoadModel(repository_pb2.LoadModelRequest(model_name=model),
                                     timeout=timeout_s if timeout_s is not None else self.timeout_s,
                                     metadata=self._metadata)
        except grpc.RpcError as e:
            raise _wrap(e) from None
        return [_version(m) for m in r.versions]

    def unload_model(self, model: str) -> None:
        """Unloads the model: new requests get UNAVAILABLE, the ones it accepted finish. Same
        conditions as load_model()."""
        try:
            self._stub.UnloadModel(repository_pb2.UnloadModelRequest(model_name=model), timeout=self.timeout_s,
                                   metadata=self._metadata)
        except grpc.RpcError as e:
            raise _wrap(e) from None

    def metadata(self, model: str) -> models_pb2.GetModelMetadataResponse:
        """The model's GetModelMetadataResponse message (family, device, dtype, attention config,
        image_size_px, labels, layer/head/width counts, num_parameters)."""
        try:
            return self._stub.GetModelMetadata(models_pb2.GetModelMetadataRequest(model_name=model),
                                               timeout=self.timeout_s, metadata=self._metadata)
        except grpc.RpcError as e:
            raise _wrap(e) from None

    def classify(self, model: str, images: Sequence[ImageInput], top_k: int = 5,
                 stats: bool = False) -> List[Classification]:
        """The top_k classes of each image (one Classification per image, in order), best first;
        with stats=True each also carries the per-layer attention statistics."""
        request = classify_pb2.ClassifyRequest(model_name=model, images=[_image(i) for i in images],
                                               top_k=top_k, return_attention_stats=stats)
        try:
            r = self._stub.Classify(request, timeout=self.timeout_s, metadata=self._metadata)
        except grpc.RpcError as e:
            raise _wrap(e) from None
        out = []
        for result in r.classifications:
            c = Classification(ClassScore(s.label, s.probability, s.class_id) for s in result.classes)
            if result.HasField("attention_stats"):
                c.attention_stats = result.attention_stats
            out.append(c)
        return out

    def segment(self, model: str, image: ImageInput) -> SegmentationMask:
        """A class id per pixel of the image, at its own resolution."""
        request = segment_pb2.SegmentRequest(model_name=model, images=[_image(image)])
        try:
            r = self._stub.Segment(request, timeout=self.timeout_s, metadata=self._metadata)
        except grpc.RpcError as e:
            raise _wrap(e) from None
        m = r.masks[0]
        if m.WhichOneof("class_ids") == "class_ids_u16":
            ids = array.array("H", m.class_ids_u16)  # little-endian on the wire
            if sys.byteorder == "big":
                ids.byteswap()
            class_ids = ids.tolist()
        else:
            class_ids = list(m.class_ids_u8)
        return SegmentationMask(m.width_px, m.height_px, class_ids, list(m.labels))

    def generate(self, model: str, prompt: str, max_new_tokens: int = 0, temperature: float = 0.0,
                 top_k: int = 0, top_p: float = 0.0, seed: int = 0, stop: Sequence[str] = (),
                 timeout_s: Optional[float] = None) -> Generation:
        """Starts a generation and returns at once; iterate the result for text pieces as they
        are produced. max_new_tokens 0: the model's default; temperature 0: greedy; top_k 0 and
        top_p 0: no filtering; seed 0: random (same seed and inputs, same text); stop: strings
        that end the generation (not returned). timeout_s (default: the client's) bounds the
        whole stream. Errors surface while iterating."""
        request = generate_pb2.GenerateRequest(model_name=model, prompt=prompt, max_new_tokens=max_new_tokens,
                                               coalesce_tokens=True,
                                               temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                                               stop=list(stop))
        return Generation(self._stub.Generate(request, timeout=timeout_s or self.timeout_s,
                                              metadata=self._metadata))

    def score(self, model: str, text: str, end_of_sequence: bool = True,
              timeout_s: Optional[float] = None) -> Scores:
        """Each token of `text` with its log-probability given the tokens before it (the first
        token has none: None), as the model scores it in one forward pass over the text. The
        text is tokenized as the training code tokenizes a document (no beginning-of-sequence
        token); end_of_sequence=True appends the end-of-sequence token and scores it too, so the
        text counts as a whole document (the model cards' held-out perplexity is computed so);
        False scores it as the beginning of a longer text."""
        request = score_pb2.ScoreRequest(model_name=model, text=text, no_end_of_sequence=not end_of_sequence)
        try:
            r = self._stub.Score(request, timeout=timeout_s or self.timeout_s, metadata=self._metadata)
        except grpc.RpcError as e:
            raise _wrap(e) from None
        out = Scores(ScoredToken(t.id, t.text, t.piece, t.logprob if t.has_logprob else None) for t in r.tokens)
        out.total_logprob = r.total_logprob
        out.scored_tokens = r.scored_tokens
        out.perplexity = r.perplexity
        return out

    def perplexity(self, model: str, text: str, end_of_sequence: bool = True,
                   timeout_s: Optional[float] = None) -> float:
        """The text's per-token perplexity, exp(-mean logprob) over every token but the first
        (score() says how the text is tokenized); NaN for a text of one token and no
        end-of-sequence token."""
        return self.score(model, text, end_of_sequence, timeout_s).perplexity
