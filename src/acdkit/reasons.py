"""Reason codes as data (``reason_codes.yaml``): bilingual titles, the awareness events each
code sets, the flags it implies and the evidence a bundle needs for it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from acdkit.errors import MalformedError, UsageError
from acdkit.regimes import RegimeBook, data_path

__all__ = ["ReasonCode", "ReasonCodes", "load"]

_CODE = re.compile(r"[A-Z][A-Z0-9-]{0,47}")


@dataclass(frozen=True)
class ReasonCode:
    code: str
    title: dict[str, str]
    description: dict[str, str]
    sets_awareness: tuple[str, ...]
    sets_flags: tuple[str, ...]
    evidence_required: tuple[str, ...]
    jp_form: str | None = None
    law_concept: str | None = None
    applicable_when: str | None = None
    legal_refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReasonCodes:
    codes: dict[str, ReasonCode]

    def get(self, code: str) -> ReasonCode:
        try:
            return self.codes[code]
        except KeyError:
            raise UsageError(
                f"unknown reason code {code!r}",
                hint=f"one of {', '.join(self.codes)} (reason_codes.yaml)",
            ) from None

    def events_of(self, codes: tuple[str, ...] | list[str]) -> list[str]:
        """The awareness events the codes set, in order, each once (unknown codes skipped:
        a decision sealed under an older file keeps verifying)."""
        out: list[str] = []
        for code in codes:
            for event in self.codes[code].sets_awareness if code in self.codes else ():
                if event not in out:
                    out.append(event)
        return out

    def flags_of(self, codes: tuple[str, ...] | list[str]) -> set[str]:
        return {f for c in codes if c in self.codes for f in self.codes[c].sets_flags}


def load(path: Path | None = None, book: RegimeBook | None = None) -> ReasonCodes:
    """Read and check reason_codes.yaml; its events must be those of regimes.yaml."""
    from acdkit import regimes

    return _load(str(path or data_path("reason_codes.yaml")), book or regimes.load())


@cache
def _load(path: str, book: RegimeBook) -> ReasonCodes:
    try:
        doc = yaml.safe_load(Path(path).read_bytes())
    except yaml.YAMLError as exc:
        raise MalformedError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != 1:
        raise MalformedError(f"{path}: schema_version 1 expected")
    codes: dict[str, ReasonCode] = {}
    for entry in doc.get("codes") or []:
        code = _code(entry, book)
        if code.code in codes:
            raise MalformedError(f"{path}: code {code.code} is defined twice")
        codes[code.code] = code
    return ReasonCodes(codes)


def _both(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not value.get("ja") or not value.get("en"):
        raise MalformedError(f"{what} needs ja and en text")
    return {"ja": str(value["ja"]).strip(), "en": str(value["en"]).strip()}


def _code(entry: Any, book: RegimeBook) -> ReasonCode:
    if not isinstance(entry, dict) or not _CODE.fullmatch(str(entry.get("code", ""))):
        raise MalformedError("every reason code needs a code of A-Z, 0-9 and '-'")
    code = entry["code"]
    events = tuple(entry.get("sets_awareness") or ())
    unknown = [e for e in events if e not in book.events]
    if unknown:
        raise MalformedError(f"reason code {code} sets unknown awareness event {unknown[0]}")
    evidence = tuple(str(e) for e in entry.get("evidence_required") or ())
    if not evidence:
        raise MalformedError(f"reason code {code} names no evidence a bundle needs")
    return ReasonCode(
        code,
        _both(entry.get("title"), f"reason code {code} title"),
        _both(entry.get("description"), f"reason code {code} description"),
        events,
        tuple(entry.get("sets_flags") or ()),
        evidence,
        entry.get("jp_form"),
        entry.get("law_concept"),
        entry.get("applicable_when"),
        tuple(entry.get("legal_refs") or ()),
    )
