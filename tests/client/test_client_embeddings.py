"""The offline lexical embedder and the client-side chunker."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farmops_client.embeddings import DIMENSION, LexicalEmbedder, chunk_text, lexical_vector


def cosine(a, b):
    """Cosine similarity of two normalized vectors."""
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_deterministic_and_normalized():
    v = lexical_vector("Newcastle disease vaccine on day 7")
    assert v == lexical_vector("Newcastle disease vaccine on day 7")
    assert len(v) == DIMENSION
    assert math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-9)


def test_case_and_punctuation_do_not_matter():
    assert lexical_vector("Feed, WATER!") == lexical_vector("feed water")


def test_shared_words_score_higher_than_unrelated_text():
    query = lexical_vector("when do broilers get the gumboro vaccine")
    related = lexical_vector("Gumboro vaccine for broilers is given on day 14 in drinking water")
    unrelated = lexical_vector("Invoice 42 for tractor diesel, paid in cash")
    assert cosine(query, related) > cosine(query, unrelated) + 0.2


def test_empty_text_gets_a_fixed_unit_vector_not_zero():
    v = lexical_vector("")
    assert v == lexical_vector("  ,, ")
    assert math.isclose(sum(x * x for x in v), 1.0)


def test_embedder_interface_and_dimension():
    e = LexicalEmbedder(dimension=16)
    assert e.model == "farmops-lexical-v1"
    assert [len(v) for v in e.embed(["a", "b c"])] == [16, 16]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_unit_vector(text):
    v = lexical_vector(text)
    assert math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-9)


def test_chunking_packs_paragraphs_and_splits_long_ones():
    text = "short one.\n\nshort two.\n\n" + " ".join(["word"] * 100)
    chunks = chunk_text(text, max_chars=60)
    assert chunks[0] == "short one.\n\nshort two."
    assert all(len(c) <= 60 for c in chunks)
    assert " ".join(c.replace("\n\n", " ") for c in chunks).split() == text.split()


def test_chunking_edge_cases():
    assert chunk_text("") == []
    assert chunk_text("\n\n  \n") == []
    assert chunk_text("x" * 25, max_chars=10) == ["x" * 10, "x" * 10, "x" * 5]
    with pytest.raises(ValueError):
        chunk_text("a", max_chars=0)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=500), st.integers(min_value=1, max_value=80))
def test_chunks_never_exceed_the_limit_and_keep_every_word(text, limit):
    chunks = chunk_text(text, max_chars=limit)
    assert all(0 < len(c) <= limit for c in chunks)
    assert "".join("".join(c.split()) for c in chunks) == "".join(text.split())
