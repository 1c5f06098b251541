"""Answers from a business's own articles: BM25 ranking over a small inverted index in TenantData.

The index is rebuilt whenever an article is written (articles change rarely; calls search often):
`kb#term#<term>` holds {article_id: term frequency}, and `kb#stats` each article's length in terms.
A search reads the stats and its own terms in one batch, then only the articles it returns.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from voiceline import tenant_data, words

ARTICLE = "article#"
TERM = "kb#term#"
STATS = "kb#stats"
# The usual BM25 constants: term frequency saturates around k1, b normalises for article length.
K1, B = 1.2, 0.75
DEFAULT_LIMIT = 3
PASSAGE_CHARS = 600


def put_article(tenant_id: str, article_id: str, title: str, body: str) -> None:
    tenant_data.put(tenant_id, ARTICLE + article_id, {"title": title, "body": body})
    reindex(tenant_id)


def reindex(tenant_id: str) -> None:
    """Rebuild the tenant's index from its articles; running it twice changes nothing."""
    postings: dict[str, dict[str, int]] = defaultdict(dict)
    lengths: dict[str, int] = {}
    for article_id, article in tenant_data.of_kind(tenant_id, ARTICLE).items():
        counts = Counter(words.terms(f"{article['title']} {article['body']}"))
        lengths[article_id] = sum(counts.values())
        for term, count in counts.items():
            postings[term][article_id] = count
    stale = set(tenant_data.of_kind(tenant_id, TERM)) - set(postings)
    puts = {TERM + term: {"postings": articles} for term, articles in postings.items()}
    tenant_data.write_batch(tenant_id, {**puts, STATS: {"lengths": lengths}}, deletes=[TERM + term for term in stale])


def rank(postings: Mapping[str, Mapping[str, int]], lengths: Mapping[str, int]) -> list[tuple[str, float]]:
    """Okapi BM25: articles by score for the query terms whose postings are given, best first."""
    if not lengths:
        return []
    average_length = sum(lengths.values()) / len(lengths)
    scores: dict[str, float] = defaultdict(float)
    for articles in postings.values():
        idf = math.log(1 + (len(lengths) - len(articles) + 0.5) / (len(articles) + 0.5))
        for article_id, frequency in articles.items():
            if article_id in lengths:
                norm = 1 - B + B * lengths[article_id] / average_length
                scores[article_id] += idf * frequency * (K1 + 1) / (frequency + K1 * norm)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def search(tenant_id: str, query: str, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The passages that best answer `query`, with their BM25 scores."""
    query_terms = list(dict.fromkeys(words.terms(query)))
    index = tenant_data.get_many(tenant_id, [STATS, *(TERM + term for term in query_terms)])
    postings = {term: index[TERM + term]["postings"] for term in query_terms if TERM + term in index}
    ranked = rank(postings, index.get(STATS, {}).get("lengths", {}))[:limit]
    articles = tenant_data.get_many(tenant_id, [ARTICLE + article_id for article_id, _ in ranked])
    return {"passages": [{"article_id": article_id, "title": articles[ARTICLE + article_id]["title"],
                          "text": _passage(articles[ARTICLE + article_id]["body"]), "score": round(score, 3)}
                         for article_id, score in ranked if ARTICLE + article_id in articles]}


def _passage(body: str) -> str:
    """The article, cut at a word boundary when it is longer than the model needs to answer."""
    if len(body) <= PASSAGE_CHARS:
        return body
    return body[:PASSAGE_CHARS].rsplit(" ", 1)[0] + " …"
