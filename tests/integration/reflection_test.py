#!/usr/bin/env python3
"""A client that knows only the server's address: everything it sends and reads is built from
the descriptors that server reflection returns (grpcio-reflection; none of the project's .proto
files or generated stubs are imported). It describes every RPC of elliptical.v1 and calls each.

    python tests/integration/reflection_test.py --server-binary build/server/elliptical-server \
        --fixtures build/fixtures
"""
import argparse
import json
import os
import sys
import tempfile
import time

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import checks  # noqa: E402
from checks import check  # noqa: E402
from server import fixture_repository, start_server  # noqa: E402

SERVICE = "elliptical.v1.InferenceService"


def wait_serving(channel, pool):
    """Health, also from reflection: grpc.health.v1 is described by the server like any service."""
    health = pool.FindServiceByName("grpc.health.v1.Health").FindMethodByName("Check")
    call = method_callable(channel, health)
    request = message_factory.GetMessageClass(health.input_type)()
    status = health.output_type.fields_by_name["status"].enum_type.values_by_name["SERVING"].number
    for _ in range(600):
        try:
            if call(request, timeout=5).status == status:
                return True
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    return False


def method_callable(channel, method):
    path = f"/{method.containing_service.full_name}/{method.name}"
    response = message_factory.GetMessageClass(method.output_type)
    make = channel.unary_stream if method.server_streaming else channel.unary_unary
    return make(path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response.FromString)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-binary", required=True)
    p.add_argument("--fixtures", required=True, help="the build's fixtures directory")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="reflection_")
    repo = fixture_repository(args.fixtures, work)
    server, address = start_server(args.server_binary, repo, work, "--compute_threads=1")
    try:
        with grpc.insecure_channel(address) as channel:
            database = ProtoReflectionDescriptorDatabase(channel)
            services = list(database.get_services())
            check(SERVICE in services, f"reflection lists {SERVICE} (services: {services})")
            pool = descriptor_pool.DescriptorPool(database)
            check(wait_serving(channel, pool), "health (described by reflection) says SERVING")

            service = pool.FindServiceByName(SERVICE)
            methods = {m.name: m for m in service.methods}
            check(set(methods) == {"ListModels", "GetModelMetadata", "Classify", "Segment", "Generate", "Score",
                                   "RepositoryIndex", "LoadModel", "UnloadModel"},
                  f"every RPC is described: {sorted(methods)}")
            for m in methods.values():
                fields = [f.name for f in m.input_type.fields] + [f.name for f in m.output_type.fields]
                check(bool(fields), f"{m.name}: {m.input_type.full_name} -> {m.output_type.full_name} with fields")

            def request(name, **fields):
                return message_factory.GetMessageClass(methods[name].input_type)(**fields)

            listed = method_callable(channel, methods["ListModels"])(request("ListModels"), timeout=30)
            check(sorted(m.name for m in listed.models) == ["lm", "seg", "vit"], "ListModels answers with the three models")
            meta = method_callable(channel, methods["GetModelMetadata"])(request("GetModelMetadata", model_name="vit"),
                                                                          timeout=30)
            check(meta.image_size_px == 32 and len(meta.labels) == 10, "GetModelMetadata: the classifier's shape")
            index = method_callable(channel, methods["RepositoryIndex"])(request("RepositoryIndex"), timeout=30)
            check(sorted(m.name for m in index.models) == ["lm", "seg", "vit"],
                  "RepositoryIndex answers with the three models")

            # Classify, from the fetched descriptors only; the answer is the model's reference one.
            images = os.path.join(args.fixtures, "classifier", "images")
            classify = request("Classify", model_name="vit", top_k=10)
            with open(os.path.join(images, "pattern_0.png"), "rb") as f:
                classify.images.add().encoded = f.read()
            got = method_callable(channel, methods["Classify"])(classify, timeout=30)
            want = json.load(open(os.path.join(args.fixtures, "classifier", "expected.json")))["pattern_0.png"]["elliptical"]
            classes = got.classifications[0].classes
            check(len(got.classifications) == 1 and len(classes) == 10, "Classify answers 10 classes for one image")
            check(all(abs(c.probability - want[c.class_id]) <= 1e-4 for c in classes),
                  "Classify's probabilities are the reference model's (within the 1e-4 parity tolerance)")

            segment = request("Segment", model_name="seg")
            with open(os.path.join(args.fixtures, "core", "segmenter", "images", "large_70x45.png"), "rb") as f:
                segment.images.add().encoded = f.read()
            masks = method_callable(channel, methods["Segment"])(segment, timeout=30).masks
            check(len(masks) == 1 and (masks[0].width_px, masks[0].height_px) == (70, 45)
                  and len(masks[0].class_ids_u8) == 70 * 45, "Segment answers a 70x45 mask")

            stream = method_callable(channel, methods["Generate"])(
                request("Generate", model_name="lm", prompt="hello", max_new_tokens=5, seed=1), timeout=30)
            messages = list(stream)
            # A message carries every token produced while the previous one was being sent.
            tokens = [t for m in messages if not m.HasField("summary") for t in m.tokens]
            check(len(tokens) == 5 and messages[-1].HasField("summary")
                  and messages[-1].summary.generated_tokens == 5, "Generate streams 5 tokens and a summary")

            scores = method_callable(channel, methods["Score"])(
                request("Score", model_name="lm", text="hello there"), timeout=30)
            check(len(scores.tokens) >= 2 and scores.scored_tokens == len(scores.tokens) - 1
                  and not scores.tokens[0].has_logprob and all(t.has_logprob for t in scores.tokens[1:])
                  and scores.perplexity > 1, "Score answers per-token logprobs and a perplexity")
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"reflection: {checks.passed} checks passed")


if __name__ == "__main__":
    main()
