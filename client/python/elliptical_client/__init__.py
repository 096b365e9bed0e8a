"""Python client for the elliptical-attention model server.

    from elliptical_client import Client
    client = Client("localhost:8500")
    print(client.classify("demo-vit-classifier", ["cat.png"]))
    for piece in client.generate("my-lm", "Once upon a time", max_new_tokens=32):
        print(piece, end="", flush=True)
"""
from .client import (ClassScore, Client, ClientError, Generation, GenerationSummary, ModelInfo,
                     SegmentationMask)

__all__ = ["Client", "ClientError", "ClassScore", "SegmentationMask", "Generation", "GenerationSummary",
           "ModelInfo"]
