"""Deterministic synthetic collection of short web-document titles: the default dataset.

The generator writes a small BEIR-layout collection that exercises what learned sparse retrieval
research measures -- vocabulary mismatch, WordPiece fragmentation, a long tail of rare words, the
value of term expansion, and the cost of pruning -- while needing no download.

Generative story
----------------
**Word forms.**  Every in-domain content word is a pseudo-word assembled from syllables (onset + vowel +
optional coda), one to four syllables long; a fraction ``compound_rate`` of lemmas are compounds
of two such roots, giving long words that a small WordPiece vocabulary splits into several pieces.
A lemma has a *paradigm*: its bare form plus two to four suffixed variants out of ``-s``,
``-ing``, ``-ed``, ``-er``, ``-ation`` (inflection-like: an English stemmer mostly conflates them
with the bare form) and ``-ist``, ``-ery`` (derivation-like: a stemmer keeps them apart), with
simple spelling rules.  All surface forms of all lemmas are distinct, and none is an English
function word.

**Concepts and synonyms.**  The collection talks about ``n_concepts`` concepts.  Each concept has
a home *topic* (``n_topics`` topics) and a global popularity rank; popularity follows a Zipf law
with exponent ``zipf_a``, both over the whole collection and inside each topic.  A concept has two
or three *lemmas* -- distinct surface words with the same meaning, the first being the most
common -- with probability ``synonym_concept_frac * (1 - exp(-r / synonym_head))``, where ``r`` is
its popularity rank inside its topic: the few everyday head words of a topic have one name, the
specific concepts of the tail usually have several.  A separate pool of ``n_names`` rare *names*
(brands, places, product lines) is drawn with a flatter Zipf law (exponent 0.8); names are
concepts with a single lemma and no variants.

**Titles.**  A document picks a topic (Zipf over topics), two *key* concepts from the head of that
topic (Zipf with the steeper exponent ``key_zipf_a``) and one to four *modifier* concepts (from
the topic with exponent ``zipf_a``, or from the whole collection with probability
``offtopic_rate``), and with probability ``name_doc_rate`` a name.  Each concept is rendered as one
of its lemmas (weights 1, 0.6, 0.35) in one of its variants (the bare form half of the time).  The
concept words are grouped into short phrases joined by function words (``of``, ``for``, ``and``,
...) and decorated with generic web words (``best``, ``guide``, ``online``, a year, ...).  Titles
have 4-12 words; the key words make documents of a topic share vocabulary, the modifiers and names
make each title specific, so a title carries several informative words.

**Queries.**  A query targets a document and expresses two to four of its concepts (probabilities
0.6, 0.3, 0.1): always one modifier -- the specific intent, drawn in inverse proportion to the
number of titles mentioning it -- plus further concepts, keys weighted ``key_query_weight``
against 1 for modifiers; the name is added with probability ``name_query_rate``.  Query texts are
unique across all splits.  Each concept is re-rendered in the searcher's words rather than the
author's: with probability ``synonym_rate`` a *different lemma* than the one in the target title is
used (when the concept has one), and with probability ``variant_rate`` a *different variant*.  A
fraction ``paraphrase_rate`` of queries is written in a paraphrasing register in which both
probabilities are raised to ``paraphrase_strength``.  With probability ``modifier_rate`` a query
word that never appears in titles (``cheap``, ``near``, ``meaning``, ...) is added.  Queries have
2-5 words.  Consequently a sizeable share of queries shares no surface word with its relevant
documents, and many more match only through common key words: exact-match retrieval (BM25) is
clearly imperfect, term expansion helps, and pruning titles to a few terms hurts.

**Clicks and qrels.**  Query targets are drawn with a mild popularity skew over documents.  Every
*train* query has exactly one clicked document, its target.  A *dev*/*test* query is relevant to
every document whose concept set contains all the query's concepts (always including the target),
whatever surface forms those documents use.  The three query sets are disjoint; dev/test targets
may also be clicked by train queries.

**Teacher.**  With ``n_teacher_negatives`` > 0, ``distillation.jsonl`` gives every train query a
teacher's scores for its clicked document and for that many mined hard negatives (the
distillation format of :mod:`splade_exp.data.distillation`), from the latent relevance the
generator knows: ``t(q, d) = Σ_{c ∈ C(q)} ln(N / df(c)) · [c ∈ C(d)]``, the idf-weighted share of
the query's concepts that a document expresses, under whatever surface forms.  The clicked
document expresses them all; the hard negatives are the highest-scoring documents that miss at
least one (documents expressing all of them are relevant, not negatives).  It is computed after
everything else and draws nothing, so the other files do not depend on it.

**General corpus.**  ``general.txt`` is a text corpus for masked-LM pretraining with a different
distribution: paragraphs of two to five long sentences (12-30 words) over a larger set of function
words, a pool of general-only pseudo-words that never occur in titles, and in-domain concepts
drawn with an independently permuted topic popularity.  Its words are predictable from their
context to different degrees, so that masked-LM pretraining has something to learn beyond the
unigram prior (``calendar_rate`` sets how much):

- *months*: ``calendar_rate`` of the phrases are runs of four to eight consecutive months of a
  made-up twelve-month calendar (``m_i m_i+1 ... m_i+7``), so a masked month follows from its
  neighbours; the same share of titles of at most nine words end with such a season (the
  ``calendar`` in ``meta.json``);
- *cues*: a concept is preceded by a determiner-like word that says which variant follows
  (``these`` -s, ``while`` -ing, ``its`` -ation, ...; its usual cue 80% of the time), as English
  determiners and auxiliaries agree with nouns and verbs;
- *subjects*: a paragraph is about one concept (``subject_rate`` of its phrases, mostly under one
  name, another with probability ``subject_synonym_rate``), so a masked mention is copied from
  the others;
- *compounds*: concepts of consecutive popularity ranks in a topic form pairs, mentioned
  ``pair_rate`` of the time as a compound ``head tail`` (in titles too, when both are a title's
  keys), so a masked half follows from the other once the pair is memorised.

Concepts of one topic co-occur under all their lemmas and variants, and occasional glossary
sentences (``x also called y``) put synonyms side by side, so distributional signal for synonymy
exists outside the titles.

Files written to ``out_dir`` (atomically: a temporary sibling directory is renamed into place):
``corpus.jsonl``, ``queries.jsonl``, ``qrels/{train,dev,test}.tsv``, ``general.txt``,
``distillation.jsonl`` (with ``n_teacher_negatives`` > 0) and ``meta.json`` (the arguments plus
statistics: distinct words and tokens of titles and of the general corpus, and ``test_no_overlap_fraction``, the share of test queries that share no surface
word with any of their relevant titles).  Output is byte-for-byte deterministic for a seed: only
``random.Random(seed)`` is used, and nothing depends on hash or set iteration order.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import os
import pathlib
import random
import shutil
import tempfile
from collections import Counter

__all__ = ["generate", "VERSION", "FUNCTION_WORDS", "TITLE_GENERIC_WORDS", "QUERY_MODIFIERS"]

#: The generator's version: the same arguments give the same files within a version, not across
#: versions. ``conf/data/synthetic.yaml`` states it as ``data.source.version``, so that run ids and
#: every artifact key built from the data config change with it (and a config written for another
#: version is refused). 2: general-corpus paragraphs about a subject, with variant cues, compound
#: pairs and a calendar (module doc, *General corpus*).
VERSION = 2

# --------------------------------------------------------------------------------------------
# Fixed English vocabulary
# --------------------------------------------------------------------------------------------

# Function words used in titles, with relative frequencies.
_TITLE_FUNCTION = (
    ("of", 10), ("and", 8), ("for", 8), ("the", 7), ("in", 5), ("with", 4), ("to", 3),
    ("on", 3), ("a", 2), ("your", 2), ("from", 1), ("at", 1), ("by", 1),
)
# Generic web-title words, with relative frequencies (these never appear in queries).
_TITLE_GENERIC = (
    ("best", 9), ("new", 8), ("guide", 7), ("online", 7), ("free", 6), ("review", 5),
    ("top", 5), ("home", 4), ("official", 4), ("site", 3), ("news", 3), ("shop", 3),
    ("sale", 2), ("tips", 2), ("list", 2), ("info", 2), ("video", 2), ("store", 2),
    ("center", 1), ("service", 1), ("how", 2), ("ideas", 1), ("page", 1), ("blog", 1),
    ("forum", 1), ("wiki", 1), ("faq", 1), ("deals", 1), ("photos", 1), ("club", 1),
)
_YEARS = tuple(str(y) for y in range(2008, 2025))
# Words that only queries use (never in titles), so they never create a surface match.
QUERY_MODIFIERS = (
    "cheap", "near", "meaning", "definition", "price", "buy", "vs", "examples", "reviews",
    "nearby", "used", "kids", "easy", "diy", "2025", "cost", "compare",
)
# General-corpus function words. A content word is preceded by a cue that says which variant it is
# in (as a determiner or an auxiliary agrees with an English noun or verb): the cue sets are
# disjoint, so a cue and another mention of the same lemma determine a masked word.
_CUES = {
    "": ("the", "a", "this"), "s": ("these", "many", "some", "both"), "ing": ("by", "while", "for"),
    "ed": ("was", "were", "been"), "er": ("each", "every", "an"), "ation": ("its", "their", "through"),
    "ist": ("one", "another", "any"), "ery": ("that", "such", "within"),
}
# Words between phrases, with relative frequencies (a larger, differently ranked set than titles').
_GENERAL_LINKS = (
    ("of", 30), ("and", 28), ("to", 20), ("in", 18), ("is", 14), ("it", 10), ("as", 8),
    ("are", 7), ("which", 6), ("be", 5), ("or", 5), ("has", 5), ("had", 4), ("but", 4),
    ("not", 4), ("they", 4), ("also", 4), ("into", 3), ("when", 3), ("there", 3), ("after", 3),
    ("other", 3), ("than", 2), ("between", 2), ("during", 2), ("would", 2), ("can", 2),
    ("may", 2), ("where", 2), ("most", 2), ("only", 2), ("over", 2), ("first", 1), ("two", 1),
    ("three", 1), ("later", 1), ("early", 1), ("often", 1), ("usually", 1), ("became", 1),
    ("known", 1), ("called", 1), ("used", 1), ("made", 1), ("found", 1), ("part", 1),
    ("under", 1), ("since", 1), ("however", 1), ("because", 1), ("although", 1),
)
_GENERAL_FUNCTION = tuple((w, 1) for cues in _CUES.values() for w in cues) + _GENERAL_LINKS
FUNCTION_WORDS = frozenset(w for w, _ in _TITLE_FUNCTION + _GENERAL_FUNCTION)
TITLE_GENERIC_WORDS = frozenset(w for w, _ in _TITLE_GENERIC) | frozenset(_YEARS)

# Phrases that link two names of a concept in the general corpus's glossary sentences.
_GLOSSARY_LINKS = ("also called", "or", "sometimes called", "known as", "also known as")

# English stopwords and short common words that generated pseudo-words must never equal.
_RESERVED = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can did do does doing don down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    also may might must shall one two three four five six seven eight nine ten""".split()
) | frozenset(" ".join(_GLOSSARY_LINKS).split())
_RESERVED |= FUNCTION_WORDS | TITLE_GENERIC_WORDS | frozenset(QUERY_MODIFIERS)

# Syllable inventory (weights favour simple shapes).
_ONSETS = (
    ("b", 4), ("d", 4), ("f", 3), ("g", 3), ("h", 2), ("j", 1), ("k", 4), ("l", 4), ("m", 4),
    ("n", 4), ("p", 4), ("r", 4), ("s", 4), ("t", 4), ("v", 3), ("w", 2), ("z", 2), ("br", 1),
    ("cl", 1), ("dr", 1), ("fl", 1), ("gr", 1), ("pl", 1), ("st", 1), ("tr", 1), ("sh", 1),
    ("ch", 1), ("th", 1), ("sk", 1), ("sp", 1), ("bl", 1), ("kr", 1), ("", 2),
)
_VOWELS = (("a", 6), ("e", 5), ("i", 5), ("o", 5), ("u", 3), ("ai", 1), ("ea", 1), ("ou", 1),
           ("io", 1), ("oo", 1))
_CODAS = (("", 10), ("n", 4), ("r", 4), ("l", 3), ("s", 2), ("t", 3), ("m", 2), ("k", 2),
          ("nd", 1), ("rt", 1), ("st", 1), ("x", 1), ("ng", 1), ("lt", 1))
_FINAL_CODAS = tuple((c, w) for c, w in _CODAS if c)
_SUFFIXES = ("s", "ing", "ed", "er", "ation", "ist", "ery")
# Months of a made-up calendar: a cycle, so in "from m_i to m_i+1" either month follows from the other.
_CALENDAR_SIZE = 12


class _Weighted:
    """O(log n) sampler from fixed weights (cumulative table + bisect on a Random draw)."""

    __slots__ = ("items", "cum", "total")

    def __init__(self, items, weights):
        self.items = list(items)
        self.cum = list(itertools.accumulate(float(w) for w in weights))
        self.total = self.cum[-1]

    def draw(self, rng: random.Random):
        return self.items[bisect.bisect_right(self.cum, rng.random() * self.total)]


def _zipf_weights(n: int, a: float, offset: float = 1.0) -> list[float]:
    return [1.0 / (r + offset) ** a for r in range(n)]


def _table(pairs) -> _Weighted:
    return _Weighted([p[0] for p in pairs], [p[1] for p in pairs])


class _WordFactory:
    """Draws fresh pseudo-words; guarantees every surface form is globally unique."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.taken: set[str] = set(_RESERVED)
        self.kind: dict[str, str] = {}  # form -> its suffix ("" for a bare form)
        self.onset = _table(_ONSETS)
        self.inner = _table([o for o in _ONSETS if len(o[0]) == 1])  # no clusters word-internally
        self.vowel = _table(_VOWELS)
        self.coda = _table(_CODAS)
        self.final = _table(_FINAL_CODAS)

    def _root(self, n_syll: int) -> str:
        rng = self.rng
        parts = []
        for i in range(n_syll):
            onset = self.onset.draw(rng) if i == 0 else self.inner.draw(rng)
            if i > 0 and not onset and parts[-1][-1] in "aeiou":
                onset = "r"  # avoid vowel hiatus across syllables
            last = i == n_syll - 1
            coda = (self.final.draw(rng) if rng.random() < 0.7 else "") if last else (
                self.coda.draw(rng) if rng.random() < 0.2 else "")
            parts.append(onset + self.vowel.draw(rng) + coda)
        return "".join(parts)

    def _syllable_count(self) -> int:
        return 1 + bisect.bisect_right((0.2, 0.75, 0.95), self.rng.random())

    def base(self, compound_rate: float) -> str:
        while True:
            if self.rng.random() < compound_rate:
                word = self._root(self.rng.choice((1, 2))) + self._root(self.rng.choice((1, 2, 2)))
            else:
                word = self._root(self._syllable_count())
            if len(word) >= 4 and word.isalpha():
                return word

    def lemma(self, compound_rate: float, n_suffixes: int) -> list[str]:
        """A paradigm: [bare form, suffixed variants...], all unused so far."""
        while True:
            root = self.base(compound_rate)
            sufs = sorted(self.rng.sample(range(len(_SUFFIXES)), n_suffixes))
            forms = [root] + [_inflect(root, _SUFFIXES[s]) for s in sufs]
            if len(set(forms)) == len(forms) and not any(f in self.taken for f in forms):
                self.taken.update(forms)
                self.kind.update(zip(forms, ("", *(_SUFFIXES[s] for s in sufs))))
                return forms

    def long_word(self, n_syll: int) -> str:
        """A fresh word of ``n_syll`` syllables and at least six letters (several WordPieces)."""
        while True:
            word = self._root(n_syll)
            if len(word) >= 6 and word.isalpha() and word not in self.taken:
                self.taken.add(word)
                return word

    def plain(self, compound_rate: float) -> str:
        while True:
            word = self.base(compound_rate)
            if word not in self.taken:
                self.taken.add(word)
                return word


def _inflect(root: str, suffix: str) -> str:
    if suffix == "s":
        return root + ("es" if root[-1] in "sxh" else "s")
    if root[-1] == "e":
        return root[:-1] + suffix
    if root[-1] in "aiou" and suffix == "ation":
        return root + "tion"
    return root + suffix


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------


def generate(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    n_docs: int = 3000,
    n_train_queries: int = 4000,
    n_dev_queries: int = 200,
    n_test_queries: int = 300,
    n_concepts: int = 2500,
    n_topics: int = 40,
    n_general_paragraphs: int = 1500,
    synonym_rate: float = 0.6,
    variant_rate: float = 0.45,
    zipf_a: float = 1.1,
    key_zipf_a: float = 1.5,
    key_query_weight: float = 2.0,
    synonym_concept_frac: float = 1.0,
    synonym_head: float = 3.0,
    paraphrase_rate: float = 0.1,
    paraphrase_strength: float = 0.9,
    offtopic_rate: float = 0.3,
    compound_rate: float = 0.15,
    n_names: int = 4000,
    name_doc_rate: float = 0.4,
    name_query_rate: float = 0.05,
    modifier_rate: float = 0.15,
    n_general_words: int = 2000,
    glossary_rate: float = 0.08,
    n_teacher_negatives: int = 0,
    pair_rate: float = 0.7,
    subject_rate: float = 0.2,
    subject_synonym_rate: float = 0.25,
    calendar_rate: float = 0.15,
) -> pathlib.Path:
    """Write a synthetic BEIR-layout collection to ``out_dir`` and return ``Path(out_dir)``.

    See the module docstring for the generative story.  Raises ``FileExistsError`` when
    ``out_dir`` already exists (the caller manages caching); the collection appears at
    ``out_dir`` atomically.
    """
    args = dict(
        seed=seed, n_docs=n_docs, n_train_queries=n_train_queries, n_dev_queries=n_dev_queries,
        n_test_queries=n_test_queries, n_concepts=n_concepts, n_topics=n_topics,
        n_general_paragraphs=n_general_paragraphs, synonym_rate=synonym_rate,
        variant_rate=variant_rate, zipf_a=zipf_a, key_zipf_a=key_zipf_a,
        key_query_weight=key_query_weight, synonym_concept_frac=synonym_concept_frac,
        synonym_head=synonym_head,
        paraphrase_rate=paraphrase_rate, paraphrase_strength=paraphrase_strength,
        offtopic_rate=offtopic_rate, compound_rate=compound_rate, n_names=n_names,
        name_doc_rate=name_doc_rate, name_query_rate=name_query_rate,
        modifier_rate=modifier_rate, n_general_words=n_general_words,
        glossary_rate=glossary_rate, n_teacher_negatives=n_teacher_negatives, pair_rate=pair_rate,
        subject_rate=subject_rate, subject_synonym_rate=subject_synonym_rate, calendar_rate=calendar_rate,
    )
    _validate(args)
    out = pathlib.Path(out_dir)
    if out.exists():
        raise FileExistsError(f"{out} already exists; refusing to overwrite a collection")
    out.parent.mkdir(parents=True, exist_ok=True)

    files, meta = _build(args)

    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "qrels").mkdir()
        for rel, content in files.items():
            with open(tmp / rel, "w", encoding="ascii", newline="\n") as fh:
                fh.write(content)
        with open(tmp / "meta.json", "w", encoding="ascii", newline="\n") as fh:
            json.dump(meta, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700
        if out.exists():
            raise FileExistsError(f"{out} appeared while generating; refusing to overwrite it")
        try:
            os.rename(tmp, out)
        except OSError as exc:  # lost a race: out was created meanwhile
            raise FileExistsError(f"{out} already exists; refusing to overwrite it") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _validate(args: dict) -> None:
    for name, value in args.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {value!r}")
    for name, value in args.items():
        if (name == "seed" or name.startswith("n_")) and not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
    for name in ("n_docs", "n_concepts", "n_topics", "n_names", "n_general_words"):
        if args[name] < 1:
            raise ValueError(f"{name} must be >= 1")
    for name in ("n_train_queries", "n_dev_queries", "n_test_queries", "n_general_paragraphs",
                 "n_teacher_negatives"):
        if args[name] < 0:
            raise ValueError(f"{name} must be >= 0")
    for name in ("synonym_rate", "variant_rate", "synonym_concept_frac", "paraphrase_rate",
                 "paraphrase_strength", "offtopic_rate", "compound_rate", "name_doc_rate",
                 "name_query_rate", "modifier_rate", "glossary_rate", "pair_rate", "subject_rate",
                 "subject_synonym_rate", "calendar_rate"):
        if not 0.0 <= args[name] <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1]")
    for name in ("zipf_a", "key_zipf_a", "key_query_weight", "synonym_head"):
        if args[name] <= 0:
            raise ValueError(f"{name} must be > 0")
    if args["n_concepts"] < 2 * args["n_topics"]:
        raise ValueError("n_concepts must be at least 2 * n_topics")


def _date_range(calendar: list[str], rng: random.Random) -> list[str]:
    """Consecutive months of the calendar cycle, "m_i m_i+1 m_i+2 ..." (four to eight of them), so that
    each follows from its neighbours."""
    i, n = rng.randrange(len(calendar)), rng.randint(4, 8)
    return [calendar[(i + j) % len(calendar)] for j in range(n)]


def _partners(topic_members: list[list[int]]) -> dict[int, int]:
    """Compound pairs: concepts of consecutive popularity ranks in a topic, (1st, 2nd), (3rd, 4th),
    ...; a topic's last concept of an odd count is its own partner (no pair)."""
    partner = {}
    for members in topic_members:
        for i, c in enumerate(members):
            j = i + 1 if i % 2 == 0 else i - 1
            partner[c] = members[j] if j < len(members) else c
    return partner


class _Concept:
    __slots__ = ("lemmas", "lemma_pick", "topic")

    def __init__(self, lemmas: list[list[str]], topic: int):
        self.lemmas = lemmas  # lemma -> [bare, variants...]
        self.lemma_pick = _Weighted(range(len(lemmas)), (1.0, 0.6, 0.35)[: len(lemmas)])
        self.topic = topic


def _render(concept: _Concept, rng: random.Random) -> tuple[int, int]:
    """(lemma index, variant index) for a title: first lemma favoured, bare form ~half the time."""
    li = concept.lemma_pick.draw(rng)
    forms = concept.lemmas[li]
    vi = 0 if len(forms) == 1 or rng.random() < 0.5 else rng.randrange(1, len(forms))
    return li, vi


def _build(args: dict) -> tuple[dict[str, str], dict]:
    seed = args["seed"]
    rng = random.Random(seed)
    a = args["zipf_a"]
    n_concepts, n_topics = args["n_concepts"], args["n_topics"]

    # ---- vocabulary: concepts (with synonyms and paradigms), names, general-only words -------
    words = _WordFactory(rng)
    concepts: list[_Concept] = []
    # Concepts are indexed by global popularity rank; topics are assigned round-robin over a
    # shuffled order so every topic owns head and tail concepts.
    topic_of = [i % n_topics for i in range(n_concepts)]
    rng.shuffle(topic_of)
    rank_in_topic = [0] * n_concepts
    seen_in_topic = [0] * n_topics
    for c in range(n_concepts):
        rank_in_topic[c] = seen_in_topic[topic_of[c]]
        seen_in_topic[topic_of[c]] += 1
    for c in range(n_concepts):
        # Everyday head words of a topic have one name; specific concepts often have several.
        head = math.exp(-rank_in_topic[c] / args["synonym_head"])
        p_syn = args["synonym_concept_frac"] * (1.0 - head)
        n_lemmas = 1
        if rng.random() < p_syn:
            n_lemmas = 2 if rng.random() < 0.7 else 3
        lemmas = [words.lemma(args["compound_rate"], rng.randint(2, 4)) for _ in range(n_lemmas)]
        concepts.append(_Concept(lemmas, topic_of[c]))
    n_names = args["n_names"]
    for _ in range(n_names):
        concepts.append(_Concept([[words.plain(0.25)]], -1))
    name_base = n_concepts
    general_words = [words.plain(0.1) for _ in range(args["n_general_words"])]
    calendar = [words.long_word(3) for _ in range(_CALENDAR_SIZE)]

    concept_pop = _Weighted(range(n_concepts), _zipf_weights(n_concepts, a))
    topic_members: list[list[int]] = [[] for _ in range(n_topics)]
    for c in range(n_concepts):  # ascending rank, so each list is popularity-ordered
        topic_members[concepts[c].topic].append(c)
    topic_pick = [_Weighted(m, _zipf_weights(len(m), a)) for m in topic_members]
    key_pick = [_Weighted(m, _zipf_weights(len(m), args["key_zipf_a"])) for m in topic_members]
    partner = _partners(topic_members)
    topic_pop = _Weighted(range(n_topics), _zipf_weights(n_topics, 0.8, 2.0))
    name_pop = _Weighted(range(name_base, name_base + n_names), _zipf_weights(n_names, 0.8, 2.0))
    func_title = _table(_TITLE_FUNCTION)
    generic_title = _table(_TITLE_GENERIC)

    # ---- documents ---------------------------------------------------------------------------
    docs: list[list[tuple[int, int, int]]] = []  # per doc: [(concept, lemma, variant)], keys first
    titles: list[str] = []
    for _ in range(args["n_docs"]):
        topic = topic_pop.draw(rng)
        chosen: list[int] = []
        seen: set[int] = set()

        def add(c: int) -> None:
            if c not in seen:
                seen.add(c)
                chosen.append(c)

        add(key_pick[topic].draw(rng))
        if rng.random() < args["pair_rate"]:
            add(partner[chosen[0]])
        while len(chosen) < 2:
            add(key_pick[topic].draw(rng))
        paired = partner[chosen[0]] == chosen[1]
        if paired:
            chosen[:2] = sorted(chosen[:2])  # the more popular concept first: "head tail"
        n_mod = rng.randint(1, 4)
        for _ in range(50):
            if len(chosen) >= 2 + n_mod:
                break
            add(concept_pop.draw(rng) if rng.random() < args["offtopic_rate"]
                else topic_pick[topic].draw(rng))
        has_name = rng.random() < args["name_doc_rate"]
        if has_name:
            add(name_pop.draw(rng))
        slots = [(c, *_render(concepts[c], rng)) for c in chosen]
        if paired:  # the first word of a compound is its bare form, as in "credit cards"
            slots[0] = (slots[0][0], slots[0][1], 0)
        docs.append(slots)
        title = _title(slots, concepts, has_name, paired, rng, func_title, generic_title)
        if rng.random() < args["calendar_rate"] and len(title.split()) <= 9:  # a season: "m_i to m_i+1"
            title += " " + " ".join(_date_range(calendar, rng)[:3])
        titles.append(title)

    # ---- queries ------------------------------------------------------------------------------
    n_docs = len(docs)
    doc_order = list(range(n_docs))
    rng.shuffle(doc_order)
    doc_pop = _Weighted(doc_order, _zipf_weights(n_docs, 0.5, 10.0))
    postings: dict[int, list[int]] = {}
    for d, slots in enumerate(docs):
        for c, _, _ in slots:
            postings.setdefault(c, []).append(d)

    df = {c: len(p) for c, p in postings.items()}
    seen_texts: set[str] = set()
    queries: list[tuple[str, str]] = []
    qrels: dict[str, list[tuple[str, str]]] = {"train": [], "dev": [], "test": []}
    test_no_overlap = 0
    qid = 0
    latent: list[tuple[str, str, list[int], int]] = []  # (split, query id, its concepts, target doc)
    for split, n_q in (("train", args["n_train_queries"]), ("dev", args["n_dev_queries"]),
                       ("test", args["n_test_queries"])):
        for _ in range(n_q):
            for _attempt in range(100):  # query texts are unique across all splits
                d = doc_pop.draw(rng)
                q_concepts, text = _query(docs[d], concepts, name_base, df, args, rng)
                if text not in seen_texts:
                    break
            seen_texts.add(text)
            qname = f"q{qid}"
            qid += 1
            queries.append((qname, text))
            latent.append((split, qname, q_concepts, d))
            if split == "train":
                rel = [d]
            else:
                rel = sorted(set.intersection(*(set(postings[c]) for c in q_concepts)))
            qrels[split].extend((qname, f"d{r}") for r in rel)
            if split == "test":
                qwords = set(text.split())
                if all(qwords.isdisjoint(titles[r].split()) for r in rel):
                    test_no_overlap += 1

    # ---- general corpus -------------------------------------------------------------------------
    general = _general_corpus(concepts, topic_members, partner, general_words, words.kind, calendar, args, rng)
    teacher = _teacher_jsonl(docs, latent, args["n_teacher_negatives"]) if args["n_teacher_negatives"] else None

    # ---- serialise --------------------------------------------------------------------------
    corpus_lines = "".join(
        json.dumps({"_id": f"d{i}", "title": t, "text": ""}) + "\n" for i, t in enumerate(titles))
    query_lines = "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries)
    files = {"corpus.jsonl": corpus_lines, "queries.jsonl": query_lines,
             "general.txt": "".join(p + "\n" for p in general)}
    if teacher is not None:
        files["distillation.jsonl"] = teacher
    for split, rows in qrels.items():
        files[f"qrels/{split}.tsv"] = "query-id\tcorpus-id\tscore\n" + "".join(
            f"{q}\t{d}\t1\n" for q, d in rows)

    title_counts = Counter(w for t in titles for w in t.split())
    general_counts = Counter(w for p in general for w in p.split())
    n_test = args["n_test_queries"]
    meta = {
        "generator": "splade_exp.data.synthetic",
        "calendar": calendar,
        "args": args,
        "stats": {
            "n_docs": n_docs,
            "n_queries": {s: n for s, n in (("train", args["n_train_queries"]),
                                            ("dev", args["n_dev_queries"]),
                                            ("test", n_test))},
            "n_qrels": {s: len(r) for s, r in qrels.items()},
            "corpus_distinct_words": len(title_counts),
            "corpus_tokens": sum(title_counts.values()),
            "corpus_mean_title_words": round(sum(title_counts.values()) / max(n_docs, 1), 4),
            "general_distinct_words": len(general_counts),
            "general_tokens": sum(general_counts.values()),
            "general_words_absent_from_corpus": sum(1 for w in general_counts
                                                    if w not in title_counts),
            "query_mean_words": round(sum(len(t.split()) for _, t in queries)
                                      / max(len(queries), 1), 4),
            "test_no_overlap_fraction": round(test_no_overlap / n_test, 6) if n_test else None,
        },
    }
    return files, meta


def _teacher_jsonl(docs, latent, n_negatives: int) -> str:
    """Distillation JSON lines of the train queries (see *Teacher* in the module doc).

    ``docs``: per document its ``(concept, lemma, variant)`` slots; ``latent``: ``(split, query id,
    query concepts, target document)`` per query. Ties between negatives are broken by a fixed
    hash of (query, document) rather than by document number; a query with fewer than
    ``n_negatives`` partial matches is padded with documents sharing no concept (score 0).
    """
    n_docs = len(docs)
    concept_sets = [{c for c, _, _ in slots} for slots in docs]
    postings: dict[int, list[int]] = {}
    for d, cs in enumerate(concept_sets):
        for c in sorted(cs):
            postings.setdefault(c, []).append(d)
    idf = {c: math.log(n_docs / len(p)) for c, p in postings.items()}
    lines = []
    for qi, (split, qname, q_concepts, target) in enumerate(latent):
        if split != "train":
            continue
        weights = {c: idf[c] for c in q_concepts}
        full = round(sum(weights.values()), 4)
        scores: dict[int, float] = {}
        for c, w in weights.items():
            for d in postings[c]:
                scores[d] = scores.get(d, 0.0) + w
        partial = [d for d in scores if not set(weights) <= concept_sets[d]]
        partial.sort(key=lambda d: (-round(scores[d], 4), (d * 2654435761 + qi * 40503) % 4294967296))
        negs = [(d, round(scores[d], 4)) for d in partial[:n_negatives]]
        start = (qi * 7919) % n_docs
        for k in range(n_docs):
            if len(negs) >= n_negatives:
                break
            d = (start + k) % n_docs
            if d not in scores:
                negs.append((d, 0.0))
        lines.append(json.dumps({"qid": qname, "pos": [[f"d{target}", full]],
                                 "neg": [[f"d{d}", s] for d, s in negs]}) + "\n")
    return "".join(lines)


def _title(slots, concepts, has_name, paired, rng, func_title, generic_title) -> str:
    content = [[concepts[c].lemmas[li][vi]] for c, li, vi in slots]
    name = content.pop()[0] if has_name else None
    # Shuffle modifiers but keep the two key concepts together near the front or the end; a
    # compound pair of keys stays one unit, in its own order.
    keys, mods = content[:2], content[2:]
    rng.shuffle(mods)
    if rng.random() < 0.5 and not paired:
        keys.reverse()
    if paired:
        keys = [keys[0] + keys[1]]
    units: list[list[str]] = []
    seq = keys + mods if rng.random() < 0.6 else mods + keys
    i = 0
    while i < len(seq):
        size = min(len(seq) - i, rng.choice((1, 2, 2, 3)))
        units.append([w for unit in seq[i:i + size] for w in unit])
        i += size
    out: list[str] = []
    for j, phrase in enumerate(units):
        if j > 0:
            out.append(func_title.draw(rng))
        out.extend(phrase)
    if name is not None:
        if rng.random() < 0.5:
            out.insert(0, name)
        else:
            out.append(name)
    r = rng.random()
    if r < 0.25:
        out.insert(0, generic_title.draw(rng))
    elif r < 0.45:
        out.append(generic_title.draw(rng))
    if rng.random() < 0.08:
        out.append(rng.choice(_YEARS))
    while len(out) < 4:
        out.append(generic_title.draw(rng))
    while len(out) > 12:  # drop a function word or a trailing word
        fi = [k for k, w in enumerate(out) if w in FUNCTION_WORDS]
        out.pop(fi[-1] if fi else -1)
    return " ".join(out)


def _query(slots, concepts, name_base, df, args, rng) -> tuple[list[int], str]:
    content = [s for s in slots if s[0] < name_base]
    names = [s for s in slots if s[0] >= name_base]
    k = min(len(content), 2 + bisect.bisect_right((0.6, 0.9), rng.random()))
    weights = [args["key_query_weight"] if i < 2 else 1.0 for i in range(len(content))]
    pool = list(range(len(content)))
    # Every query carries a modifier -- its specific intent, drawn in inverse proportion to how
    # many titles mention the concept -- then further keys or modifiers.
    mods = pool[2:] or pool
    first = _Weighted(mods, [1.0 / df[content[i][0]] for i in mods]).draw(rng)
    pool.remove(first)
    picked: list[tuple[int, int, int]] = [content[first]]
    for _ in range(k - 1):
        j = _Weighted(pool, [weights[p] for p in pool]).draw(rng)
        pool.remove(j)
        picked.append(content[j])
    if names and rng.random() < args["name_query_rate"]:
        picked.append(names[0])
    syn_p, var_p = args["synonym_rate"], args["variant_rate"]
    if rng.random() < args["paraphrase_rate"]:
        syn_p = max(syn_p, args["paraphrase_strength"])
        var_p = max(var_p, args["paraphrase_strength"])
    words_out: list[str] = []
    for c, li, vi in picked:
        concept = concepts[c]
        if len(concept.lemmas) > 1 and rng.random() < syn_p:
            li = rng.choice([x for x in range(len(concept.lemmas)) if x != li])
            vi = min(vi, len(concept.lemmas[li]) - 1)
        forms = concept.lemmas[li]
        if len(forms) > 1 and rng.random() < var_p:
            vi = rng.choice([x for x in range(len(forms)) if x != vi])
        words_out.append(forms[vi])
    rng.shuffle(words_out)
    if len(words_out) < 5 and rng.random() < args["modifier_rate"]:
        words_out.insert(rng.randrange(len(words_out) + 1), rng.choice(QUERY_MODIFIERS))
    return [c for c, _, _ in picked], " ".join(words_out)


def _general_corpus(concepts, topic_members, partner, general_words, kind_of, calendar, args, rng) -> list[str]:
    n_topics = len(topic_members)
    a = args["zipf_a"]
    # Independent popularity: permuted topic ranking, permuted concept ranking inside topics.
    topic_order = list(range(n_topics))
    rng.shuffle(topic_order)
    topic_pop = _Weighted(topic_order, _zipf_weights(n_topics, 0.5, 1.0))
    topic_pick = [_Weighted(members, _zipf_weights(len(members), a * 0.8)) for members in topic_members]
    in_domain = list(range(sum(len(m) for m in topic_members)))
    rng.shuffle(in_domain)
    global_pick = _Weighted(in_domain, _zipf_weights(len(in_domain), 0.9))
    gen_pick = _Weighted(general_words, _zipf_weights(len(general_words), 1.0))
    link = _table(_GENERAL_LINKS)
    subject_rate, synonym_p = args["subject_rate"], args["subject_synonym_rate"]
    cue_bias = 0.8  # each variant's usual cue: a masked cue follows from the word after it

    def phrase(forms: list[str], head: str | None = None) -> list[str]:
        """A determiner-like cue that says which variant follows, then the variant."""
        form = forms[0] if rng.random() < 0.5 else forms[rng.randrange(len(forms))]
        cues = _CUES[kind_of[form]]
        cue = cues[0] if rng.random() < cue_bias else cues[1 + rng.randrange(len(cues) - 1)]
        return [cue, *((head,) if head else ()), form]

    def mention(c: int) -> list[str]:
        """A concept in one of its names; a paired concept usually as its compound, "head tail"."""
        lemmas = concepts[c].lemmas
        forms = lemmas[rng.randrange(len(lemmas))]
        if partner[c] == c or rng.random() >= args["pair_rate"]:
            return phrase(forms)
        other = concepts[partner[c]].lemmas
        other = other[rng.randrange(len(other))]
        return phrase(other, forms[0]) if c < partner[c] else phrase(forms, other[0])

    paragraphs = []
    for _ in range(args["n_general_paragraphs"]):
        topic = topic_pop.draw(rng)
        subject = concepts[topic_pick[topic].draw(rng)]
        main = rng.randrange(len(subject.lemmas))  # the name this paragraph mostly uses

        def subject_forms() -> list[str]:
            if len(subject.lemmas) > 1 and rng.random() < synonym_p:
                return subject.lemmas[rng.choice([x for x in range(len(subject.lemmas)) if x != main])]
            return subject.lemmas[main]

        sentences = []
        for _ in range(rng.randint(2, 5)):
            if len(subject.lemmas) > 1 and rng.random() < args["glossary_rate"]:
                x, y = rng.sample(range(len(subject.lemmas)), 2)
                tail = (link.draw(rng), gen_pick.draw(rng), *phrase(subject.lemmas[x]))
                sentences.append(" ".join((*phrase(subject.lemmas[x][:1]), rng.choice(_GLOSSARY_LINKS),
                                           subject.lemmas[y][0], *tail)))
                continue
            length = rng.randint(12, 30)
            toks: list[str] = []
            while len(toks) < length:
                if toks and rng.random() < 0.6:
                    toks.append(link.draw(rng))
                r = rng.random()
                if r < subject_rate:
                    toks.extend(phrase(subject_forms()))
                elif r < subject_rate + 0.3:
                    toks.extend(mention(topic_pick[topic].draw(rng) if rng.random() < 0.7
                                        else global_pick.draw(rng)))
                elif r < subject_rate + 0.3 + args["calendar_rate"]:
                    toks.extend(_date_range(calendar, rng))
                else:
                    toks.append(gen_pick.draw(rng))
            sentences.append(" ".join(toks))
        paragraphs.append(" ".join(sentences))
    return paragraphs
