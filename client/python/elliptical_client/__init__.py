"""Python client for the elliptical-attention model server.

    from elliptical_client import Client, ClientError

    with Client("localhost:8500") as client:
        for scores in client.classify("digits-vit", ["docs/examples/digit-3.png"], top_k=3):
            print([(s.label, round(s.probability, 3)) for s in scores])
        generation = client.generate("kjv-lm", "And God said", max_new_tokens=32)
        for piece in generation:
            print(piece, end="", flush=True)
        print(generation.summary)
        print(client.perplexity("kjv-lm", "In the beginning God created the heaven and the earth."))
"""
from .client import (Classification, ClassScore, Client, ClientError, Generation, GenerationSummary, ImageInput,
                     ModelInfo, ModelVersion, ScoredToken, Scores, SegmentationMask)

__all__ = ["Client", "ClientError", "Classification", "ClassScore", "SegmentationMask", "Generation",
           "GenerationSummary", "ModelInfo", "ModelVersion", "ImageInput", "ScoredToken", "Scores"]
