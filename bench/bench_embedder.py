"""Throughput of the offline lexical embedder and the chunker (prints numbers; not a test)."""

from __future__ import annotations

import time

from farmops_client.embeddings import chunk_text, lexical_vector

TEXT = (
    "Broilers need clean water at all times. Gumboro vaccine is given on day 14 in drinking water. "
    "Record every mortality the same day, with the cause when it is known. "
) * 20


def main() -> None:
    """Embed a 3 kB passage repeatedly and chunk a 300 kB document; print rates."""
    n = 200
    start = time.perf_counter()
    for _ in range(n):
        lexical_vector(TEXT)
    elapsed = time.perf_counter() - start
    print(f"lexical_vector: {n / elapsed:8.1f} passages/s ({len(TEXT)} chars each, 1024 dims)")
    doc = "\n\n".join([TEXT] * 100)
    start = time.perf_counter()
    chunks = chunk_text(doc)
    print(
        f"chunk_text:     {len(doc) / 1e6 / (time.perf_counter() - start):8.1f} MB/s ({len(chunks)} chunks)"
    )


if __name__ == "__main__":
    main()
