"""Words for matching what callers say against a business's text: lower-case, stemmed, no filler."""

from __future__ import annotations

import re

import snowballstemmer

_TOKEN = re.compile(r"[a-z0-9]+")
# Words that carry no meaning in a caller's question; BM25's idf would mostly ignore them anyway,
# but dropping them keeps short queries from matching on "do you".
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for", "from", "have", "how",
    "i", "if", "in", "is", "it", "me", "my", "of", "on", "or", "our", "please", "the", "there", "this", "to", "us",
    "we", "what", "when", "where", "which", "will", "with", "would", "you", "your",
})


def terms(text: str) -> list[str]:
    """The stemmed words of `text` in order, repeats kept: "Paying by cards?" → ["pay", "card"]."""
    tokens = [token for token in _TOKEN.findall(text.lower()) if token not in STOPWORDS]
    # A stemmer keeps state while it works, so each call gets its own (threads share this module locally).
    return snowballstemmer.stemmer("english").stemWords(tokens)
