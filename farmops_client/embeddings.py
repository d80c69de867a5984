"""Text embeddings for retrieval: Amazon Titan Text Embeddings V2, or an offline lexical embedder.

Both produce L2-normalized vectors of :data:`DIMENSION` floats, the dimension of the
``farmops.embeddings`` column. :class:`LexicalEmbedder` needs no network and no model: it is
feature hashing of word uni- and bigrams, so it finds documents that share *words* with the
query, not documents that share meaning; it is labelled "lexical" wherever it is used.

Nothing picks an embedder silently: the caller chooses one (an instance, or a name for
:func:`embedder_named`), and its ``model`` is stored with every vector it makes.

Chunking documents into passages is the client's job (``farmops.ingest_document`` takes the
chunks and their vectors): :func:`chunk_text` splits on paragraphs, then on words.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Sequence
from typing import Any, Protocol

from .errors import NotConfigured

DIMENSION = 1024
TITAN_V2 = "amazon.titan-embed-text-v2:0"
LEXICAL_MODEL = "farmops-lexical-v1"
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


class Embedder(Protocol):
    """Anything that turns texts into vectors of :data:`DIMENSION` floats."""

    #: Recorded with every stored vector (``p_model``); vectors of different models do not mix.
    model: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One normalized vector per text."""
        ...


def _features(text: str) -> list[str]:
    words = [w.lower() for w in _WORD.findall(text)]
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


def lexical_vector(text: str, dimension: int = DIMENSION) -> list[float]:
    """Feature-hash the word 1- and 2-grams of ``text`` into ``dimension`` signed buckets, L2-normalized.

    Deterministic across processes and platforms (blake2b, not Python's salted ``hash``).
    A text with no words gets a fixed unit vector so that the database never sees a zero vector
    (cosine distance is undefined for it).
    """
    vec = [0.0] * dimension
    for feature in _features(text):
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        bucket = value % dimension
        sign = 1.0 if (value >> 63) & 1 else -1.0
        weight = 1.0 if " " not in feature else 0.5
        vec[bucket] += sign * weight
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0.0:
        vec[0] = 1.0
        return vec
    return [v / norm for v in vec]


class LexicalEmbedder:
    """Offline, deterministic, dependency-free embedder (lexical feature hashing, not semantic)."""

    model = LEXICAL_MODEL

    def __init__(self, dimension: int = DIMENSION):
        self.dimension = dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One lexical vector per text."""
        return [lexical_vector(t, self.dimension) for t in texts]


class TitanEmbedder:
    """Amazon Titan Text Embeddings V2 through ``bedrock-runtime`` InvokeModel (one call per text)."""

    model = TITAN_V2

    def __init__(self, bedrock_client, dimension: int = DIMENSION, model_id: str = TITAN_V2):
        self.client = bedrock_client
        self.dimension = dimension
        self.model = model_id
        #: Input tokens Bedrock reported for the texts embedded so far.
        self.input_tokens = 0

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Call InvokeModel for each text; raises botocore's ClientError on service errors."""
        return self.embed_counted(texts)[0]

    def embed_counted(self, texts: Sequence[str]) -> tuple[list[list[float]], int]:
        """:meth:`embed`, and the input tokens Bedrock reported for these texts (metered by the caller)."""
        out = []
        tokens = 0
        for text in texts:
            response = self.client.invoke_model(
                modelId=self.model,
                contentType="application/json",
                accept="application/json",
                body=json.dumps({"inputText": text, "dimensions": self.dimension, "normalize": True}),
            )
            payload = json.loads(response["body"].read())
            tokens += int(payload.get("inputTextTokenCount", 0))
            out.append([float(x) for x in payload["embedding"]])
        self.input_tokens += tokens
        return out, tokens


#: The names :func:`embedder_named` (and the CLI's ``--embedder``) accept.
EMBEDDER_NAMES = ("lexical", "titan")


def embedder_named(name: str, bedrock: Any = None) -> Embedder:
    """``"lexical"`` (:class:`LexicalEmbedder`) or ``"titan"`` (:class:`TitanEmbedder` on ``bedrock``)."""
    if name == "lexical":
        return LexicalEmbedder()
    if name == "titan":
        if bedrock is None:
            raise NotConfigured("the titan embedder needs a bedrock-runtime client (bedrock=)")
        return TitanEmbedder(bedrock)
    raise ValueError(f"unknown embedder {name!r}: choose one of {', '.join(EMBEDDER_NAMES)}")


def chunk_text(text: str, max_chars: int = 1200) -> list[str]:
    """Split ``text`` into passages of at most ``max_chars``: paragraphs first, long ones by words.

    Consecutive short paragraphs are packed together; empty input gives no chunks.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        if len(para) <= max_chars:
            pieces.append(para)
            continue
        current = ""
        for word in para.split():
            while len(word) > max_chars:  # one enormous "word": hard split
                if current:
                    pieces.append(current)
                    current = ""
                pieces.append(word[:max_chars])
                word = word[max_chars:]
            candidate = f"{current} {word}" if current else word
            if len(candidate) > max_chars:
                pieces.append(current)
                current = word
            else:
                current = candidate
        if current:
            pieces.append(current)
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 2 + len(piece) <= max_chars:
            chunks[-1] = f"{chunks[-1]}\n\n{piece}"
        else:
            chunks.append(piece)
    return chunks
