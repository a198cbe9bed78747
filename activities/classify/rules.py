"""Layer 1 of the classifier: deterministic rules and a gazetteer built from the tenant's catalog.

Every match carries an explanation; the same question, catalog and as-of date always give the same result.
Names of entities and accounts come from the catalog in the database. The only vocabulary written here is
general language: intent cue words, month names, country names, and common finance abbreviations (COGS, opex)
that map onto catalog account *names*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from docket.calendar import MONTHS_LOWER as MONTHS
from docket.catalog import Catalog
from docket.contracts import ClassifyResult, Complexity, Intent, PeriodRef, Shock, SlotMatch, Slots

CLASSIFIER_VERSION = "rules-2"

# Abbreviations and synonyms that point at a catalog account name (looked up by name, so a tenant whose chart
# lacks the account simply gets no match).
ACCOUNT_ALIASES: dict[str, str] = {
    "cogs": "cost of goods sold",
    "cost of sales": "cost of goods sold",
    "opex": "operating costs",
    "operating expenses": "operating costs",
    "total costs": "operating costs",
    "sales": "revenue",
    "turnover": "revenue",
    "revenues": "revenue",
    "salaries": "salaries and wages",
    "wages": "salaries and wages",
    "payroll cost": "payroll",
    "payroll costs": "payroll",
    "headcount cost": "payroll",
    "freight": "freight and logistics",
    "logistics": "freight and logistics",
    "rent": "rent and facilities",
    "facilities": "rent and facilities",
    "travel": "travel and entertainment",
    "t and e": "travel and entertainment",  # "&" is read as "and" before matching
    "software": "software and it",
    "it costs": "software and it",
    "legal fees": "professional fees",
    "consulting fees": "professional fees",
    "marketing": "sales and marketing",
    "benefits": "employee benefits",
    "bonus": "bonuses",
}

COUNTRY_NAMES: dict[str, list[str]] = {
    "US": ["united states", "usa", "u.s."],
    "CA": ["canada"],
    "MX": ["mexico"],
    "BR": ["brazil", "brasil"],
    "GB": ["united kingdom", "uk", "britain", "great britain"],
    "DE": ["germany"],
    "FR": ["france"],
    "JP": ["japan"],
    "SG": ["singapore"],
    "AU": ["australia"],
}

REGION_ALIASES: dict[str, list[str]] = {
    "NA": ["north america", "north american"],
    "LATAM": ["latin america", "south america", "latam"],
    "EMEA": ["europe", "european", "emea"],
    "APAC": ["asia pacific", "asia-pacific", "asia", "apac"],
}

GROUP_PHRASES = [
    "the group",
    "group",
    "all entities",
    "consolidated",
    "company-wide",
    "whole company",
    "total company",
]

MONTH_ABBR = {m[:3]: i + 1 for i, m in enumerate(MONTHS)} | {"sept": 9}
MONTH_FULL = {m: i + 1 for i, m in enumerate(MONTHS)}

INTENT_CUES: list[tuple[Intent, str]] = [
    (
        Intent.SCENARIO,
        r"\bscenarios?\b|\bwhat if\b|\bwhat happens\b|\bsensitivity\b"
        r"|\bif [\w\s]+ (?:rises?|falls?|increases?|decreases?|drops?|grows?)\b",
    ),
    (Intent.VARIANCE_EXPLANATION, r"\bwhy\b|\bvariance\b|\bexplain\b|\bdrove\b|\bdrivers?\b"),
    (
        Intent.GROWTH,
        r"\bgrowth\b|\byoy\b|\by/y\b|\byear[- ](?:over|on)[- ]year\b|\bmonth[- ](?:over|on)[- ]month\b"
        r"|\bqoq\b|\bquarter[- ](?:over|on)[- ]quarter\b|\bgrew\b",
    ),
    (Intent.TREND, r"\btrend(?:s|ed|ing)?\b|\btrajectory\b|\bover the (?:last|past)\b"),
    (
        Intent.COMPARISON,
        r"\bcompar(?:e|ed|es|ing|ison)\b|\bvs\.?\b|\bversus\b|\bacross\b|\bby entity\b|\beach entity\b|\bbreak ?down\b",
    ),
]
# Attempts to talk the system out of its rules are not finance questions, whatever metric they name.
OVERRIDE_CUES = (
    r"\bignore (?:all |any |the )?(?:previous|prior|above|earlier|your) (?:instructions|rules)\b|\bbypass\b"
    r"|\bnew instructions\b|\bwithout (?:any )?restrictions\b|\bpretend (?:you are|to be)\b|\bjailbreak\b"
    r"|\bsystem administrator\b|\byou are now\b|\bdisregard (?:the |all )?(?:rules|policies|instructions)\b"
)
DOCUMENT_CUES = (
    r"\bmemo\b|\bpolicy\b|\bdocument\b|\bcommentary\b|\bsay\b|\bsays\b|\baccording to\b|\bexplain\b|\bcalendar\b"
)


SHOCK_UP = ["rises", "rise", "increases", "increase", "goes up", "go up", "grows", "grow", "climbs", "jumps"]
SHOCK_DOWN = ["falls", "fall", "decreases", "decrease", "goes down", "go down", "drops", "drop", "declines", "shrinks"]
DERIVED_METRICS = {
    "gross profit": "gross_profit",
    "gross margin": "gross_margin_pct",
    "gross margin %": "gross_margin_pct",
    "gross margin percentage": "gross_margin_pct",
    "gm%": "gross_margin_pct",
    "operating income": "operating_income",
    "operating profit": "operating_income",
    "ebit": "operating_income",
}
GROWTH_BASIS = [
    ("yoy", r"\byoy\b|\by/y\b|\byear[- ](?:over|on)[- ]year\b|\bvs\.? (?:the )?(?:same month )?last year\b"),
    ("qoq", r"\bqoq\b|\bquarter[- ](?:over|on)[- ]quarter\b"),
    ("mom", r"\bmonth[- ](?:over|on)[- ]month\b"),
]


class Trail(list[str]):
    """The explanation trail of a classification, plus one structured record per slot match."""

    def __init__(self) -> None:
        super().__init__()
        self.matches: list[SlotMatch] = []

    def match(self, slot: str, text: str, value: str, confidence: float, why: str) -> None:
        self.matches.append(SlotMatch(slot=slot, text=text, value=value, confidence=confidence))
        self.append(f"{why} [confidence {confidence:.2f}]")


@dataclass
class Extraction:
    """The deterministic part of classification: slots, cue words, unread dates, and the trail of matches."""

    text: str
    slots: Slots
    cues: list[Intent]
    unread: list[str]
    explanations: Trail


@dataclass
class _Span:
    start: int
    end: int

    def overlaps(self, other: _Span) -> bool:
        return self.start < other.end and other.start < self.end


def _month_label(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def _shift(year: int, month: int, delta: int) -> tuple[int, int]:
    idx = year * 12 + (month - 1) + delta
    return idx // 12, idx % 12 + 1


def _months(year: int, first: int, last: int) -> list[str]:
    return [_month_label(year, m) for m in range(first, last + 1)]


class RuleClassifier:
    """Rules over one tenant's catalog. Build once per catalog; classify many questions."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        by_name = {a.name.lower(): code for code, a in catalog.accounts.items()}
        self.account_phrases: dict[str, tuple[str, str]] = {}  # phrase -> (account code, metric label)
        for name, code in by_name.items():
            self.account_phrases[name] = (code, name)
        for alias, target in ACCOUNT_ALIASES.items():
            if target in by_name and alias not in self.account_phrases:
                label = alias if alias in {"cogs", "opex"} else target
                self.account_phrases[alias] = (by_name[target], label)
        self.entity_phrases: dict[str, str] = {}
        for code, ent in catalog.entities.items():
            self.entity_phrases[code.lower()] = code
            self.entity_phrases[ent.name.lower().rstrip(".")] = code
            short = re.sub(
                r"\b(inc|ltd|gmbh|sas|k\.k|pte|pty|s\.a\. de c\.v|ltda|corporation|corp)\b\.?",
                "",
                ent.name,
                flags=re.I,
            ).strip(" .,")
            if len(short.split()) >= 2:
                self.entity_phrases.setdefault(short.lower(), code)
        countries: dict[str, list[str]] = {}
        for code, ent in catalog.entities.items():
            countries.setdefault(ent.country, []).append(code)
        for country, codes in countries.items():
            if len(codes) == 1:
                for phrase in COUNTRY_NAMES.get(country, []):
                    self.entity_phrases.setdefault(phrase, codes[0])
        self.region_phrases: dict[str, str] = {}
        for region in catalog.regions:
            for phrase in REGION_ALIASES.get(region, []):
                self.region_phrases[phrase] = region

    # ------------------------------------------------------------------ slots

    @staticmethod
    def _find(
        text: str, phrases: dict[str, str] | dict[str, tuple[str, str]], taken: list[_Span]
    ) -> list[tuple[str, _Span]]:
        """Longest-first, non-overlapping, whole-word phrase matches."""
        found: list[tuple[str, _Span]] = []
        for phrase in sorted(phrases, key=len, reverse=True):
            for m in re.finditer(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])", text):
                span = _Span(m.start(), m.end())
                if any(span.overlaps(t) for t in taken):
                    continue
                taken.append(span)
                found.append((phrase, span))
        found.sort(key=lambda f: f[1].start)
        return found

    def _accounts(
        self, text: str, why: Trail, taken: list[_Span] | None = None
    ) -> tuple[list[str], list[str], list[str]]:
        taken = list(taken or [])
        codes: list[str] = []
        labels: list[str] = []
        for m in re.finditer(r"\baccount (\d+(?:\.\d+)*)\b", text):
            code = m.group(1)
            if code in self.catalog.accounts:
                taken.append(_Span(m.start(), m.end()))
                codes.append(code)
                labels.append(self.catalog.accounts[code].name.lower())
                why.match("account", m.group(0), code, 1.0, f"account code {code} named explicitly")
        excluded: list[str] = []
        for phrase, span in self._find(text, self.account_phrases, taken):
            code, label = self.account_phrases[phrase]
            # "operating costs excluding payroll": the phrase after an exclusion word narrows the total before it.
            if re.search(r"\b(?:excluding|excl\.?|except|ex|without|less|net of)\s+(?:the\s+)?$", text[: span.start]):
                if code not in excluded:
                    excluded.append(code)
                    why.match(
                        "exclude_account",
                        phrase,
                        code,
                        0.95,
                        f"'{phrase}' excluded → account {code} left out of the total",
                    )
                continue
            if code not in codes:
                codes.append(code)
                labels.append(label)
                exact = phrase == self.catalog.accounts[code].name.lower()
                why.match(
                    "account",
                    phrase,
                    code,
                    1.0 if exact else 0.95,
                    f"'{phrase}' → account {code} ({self.catalog.accounts[code].name})",
                )
        return codes, labels, excluded

    def _entities(self, raw: str, text: str, why: Trail) -> tuple[list[str], str, list[str]]:
        taken: list[_Span] = []
        codes: list[str] = []
        regions: list[str] = []
        scope = ""
        for phrase, _span in self._find(text, self.entity_phrases, taken):
            code = self.entity_phrases[phrase]
            if code not in codes:
                codes.append(code)
                ent = self.catalog.entities[code]
                how = 1.0 if phrase == code.lower() else 0.98 if phrase.startswith(ent.name.lower()[:6]) else 0.9
                why.match("entity", phrase, code, how, f"'{phrase}' → entity {code}")
        # Region codes are matched in the original casing: "NA" is a region, "na" is not.
        for region in self.catalog.regions:
            for m in re.finditer(r"(?<![\w-])" + re.escape(region) + r"(?![\w-])", raw):
                span = _Span(m.start(), m.end())
                if not any(span.overlaps(t) for t in taken) and region not in regions:
                    taken.append(span)
                    regions.append(region)
                    why.match("region", region, region, 0.95, f"'{region}' → region {region}")
        for phrase, _span in self._find(text, self.region_phrases, taken):
            region = self.region_phrases[phrase]
            if region not in regions:
                regions.append(region)
                why.match("region", phrase, region, 0.9, f"'{phrase}' → region {region}")
        for region in regions:
            scope = f"region:{region}" if not scope else scope + f",region:{region}"
            for code in self.catalog.entities_in_region(region):
                if code not in codes:
                    codes.append(code)
        if not codes:
            group = self._find(text, dict.fromkeys(GROUP_PHRASES, ""), taken)
            if group:
                scope = "group"
                codes = sorted(self.catalog.entities)
                why.match("entity", group[0][0], "group", 0.9, f"'{group[0][0]}' → the group ({len(codes)} entities)")
        elif not scope:
            scope = "explicit"
        return codes, scope, regions

    def _periods(self, text: str, as_of: date, why: Trail) -> list[PeriodRef]:
        out: list[tuple[int, PeriodRef]] = []
        taken: list[_Span] = []

        def add(m: re.Match[str], ref: PeriodRef, note: str) -> None:
            span = _Span(m.start(), m.end())
            if any(span.overlaps(t) for t in taken):
                return
            taken.append(span)
            out.append((m.start(), ref))
            sure = 0.85 if note.startswith("latest such") else 0.95 if ref.relative else 1.0
            why.match("period", m.group(0), ref.label, sure, f"'{m.group(0)}' → {ref.label} ({note})")

        last_year, last_month = _shift(as_of.year, as_of.month, -1)
        for m in re.finditer(r"\b(?:last|previous|prior) month\b", text):
            add(
                m,
                PeriodRef(
                    label=_month_label(last_year, last_month),
                    months=[_month_label(last_year, last_month)],
                    relative=True,
                ),
                f"month before {as_of.isoformat()}",
            )
        for m in re.finditer(r"\bthis month\b", text):
            lbl = _month_label(as_of.year, as_of.month)
            add(m, PeriodRef(label=lbl, months=[lbl], relative=True), f"month of {as_of.isoformat()}")
        for m in re.finditer(r"\b(?:last|past|previous) ([1-9]\d?) months\b", text):
            n = int(m.group(1))
            months = [_month_label(*_shift(last_year, last_month, -k)) for k in range(n - 1, -1, -1)]
            add(
                m,
                PeriodRef(label=f"{months[0]}..{months[-1]}", months=months, relative=True),
                f"{n} months ending {months[-1]}",
            )
        for m in re.finditer(r"\b(?:ytd|year[- ]to[- ]date)\b", text):
            months = _months(as_of.year, 1, as_of.month - 1) if as_of.month > 1 else []
            if months:
                add(
                    m,
                    PeriodRef(label=f"{as_of.year}-YTD", months=months, relative=True),
                    f"January to the last complete month before {as_of.isoformat()}",
                )
        for m in re.finditer(r"\b(?:last|previous|prior) quarter\b", text):
            q = (as_of.month - 1) // 3  # current quarter index 0..3; last quarter is q-1
            year, qi = (as_of.year, q - 1) if q > 0 else (as_of.year - 1, 3)
            add(
                m,
                PeriodRef(label=f"{year}-Q{qi + 1}", months=_months(year, qi * 3 + 1, qi * 3 + 3), relative=True),
                "quarter before the as-of date",
            )
        for m in re.finditer(r"\b(?:last|previous|prior) year\b", text):
            y = as_of.year - 1
            add(m, PeriodRef(label=str(y), months=_months(y, 1, 12), relative=True), "calendar year before")
        for m in re.finditer(r"\b(\d{4})-(0[1-9]|1[0-2])\b", text):
            lbl = f"{m.group(1)}-{m.group(2)}"
            add(m, PeriodRef(label=lbl, months=[lbl]), "ISO month")
        for m in re.finditer(r"\bq([1-4])\s*(?:fy\s*)?(\d{4})\b|\b(\d{4})\s*-?\s*q([1-4])\b", text):
            qn, year = (int(m.group(1)), int(m.group(2))) if m.group(1) else (int(m.group(4)), int(m.group(3)))
            add(m, PeriodRef(label=f"{year}-Q{qn}", months=_months(year, qn * 3 - 2, qn * 3)), "quarter")
        for m in re.finditer(r"\bh([12])\s*(\d{4})\b", text):
            h, year = int(m.group(1)), int(m.group(2))
            add(m, PeriodRef(label=f"{year}-H{h}", months=_months(year, h * 6 - 5, h * 6)), "half year")
        month_re = "|".join(sorted(list(MONTH_FULL) + list(MONTH_ABBR), key=len, reverse=True))

        def month_no(name: str) -> int:
            return MONTH_FULL.get(name) or MONTH_ABBR[name]

        for m in re.finditer(
            rf"\b(?:from|between)?\s*({month_re})\.?\s+(?:to|through|until|and|-)\s+({month_re})\.?,?\s+(\d{{4}})\b",
            text,
        ):
            first, last, year = month_no(m.group(1)), month_no(m.group(2)), int(m.group(3))
            if first < last and (m.group(0).lstrip().startswith(("from", "between")) or " and " not in m.group(0)):
                months = _months(year, first, last)
                add(m, PeriodRef(label=f"{months[0]}..{months[-1]}", months=months), "month range")
        for m in re.finditer(
            rf"\b((?:{month_re})(?:(?:,\s*and\s+|,\s*|\s+and\s+)(?:{month_re}))+),?\s+(\d{{4}})\b", text
        ):
            year = int(m.group(2))
            names = re.split(r",\s*and\s+|,\s*|\s+and\s+", m.group(1))
            span = _Span(m.start(), m.end())
            if any(span.overlaps(t) for t in taken):
                continue
            taken.append(span)
            for name in names:
                lbl = _month_label(year, month_no(name))
                out.append((m.start(), PeriodRef(label=lbl, months=[lbl])))
            why.match(
                "period",
                m.group(0),
                ",".join(_month_label(year, month_no(n)) for n in names),
                1.0,
                f"'{m.group(0)}' → {len(names)} months of {year}",
            )
        for m in re.finditer(r"\b(first|second|1st|2nd) half(?: of)?\s+(\d{4})\b", text):
            h, year = (1 if m.group(1) in ("first", "1st") else 2), int(m.group(2))
            add(m, PeriodRef(label=f"{year}-H{h}", months=_months(year, h * 6 - 5, h * 6)), "half year")
        for m in re.finditer(rf"\b({month_re})\.?,?\s+(\d{{4}})\b", text):
            name = m.group(1)
            month = MONTH_FULL.get(name) or MONTH_ABBR[name]
            lbl = _month_label(int(m.group(2)), month)
            add(m, PeriodRef(label=lbl, months=[lbl]), "month")
        for m in re.finditer(r"\bq([1-4])\b", text):
            qn = int(m.group(1))
            year = (
                as_of.year
                if _month_label(as_of.year, qn * 3) < _month_label(as_of.year, as_of.month)
                else as_of.year - 1
            )
            add(
                m,
                PeriodRef(label=f"{year}-Q{qn}", months=_months(year, qn * 3 - 2, qn * 3), relative=True),
                "latest such quarter",
            )
        for m in re.finditer(r"\b(?:fy\s*)?(20\d{2})\b", text):
            y = int(m.group(1))
            add(m, PeriodRef(label=str(y), months=_months(y, 1, 12)), "calendar year")
        # Bare month names ("in March"): the latest such month before the as-of date. "may" is a verb too,
        # so it only counts after "in"/"for".
        for m in re.finditer(rf"\b(?:in|for|during) ({'|'.join(MONTHS)})\b", text):
            month = MONTH_FULL[m.group(1)]
            year = as_of.year if month < as_of.month else as_of.year - 1
            lbl = _month_label(year, month)
            add(m, PeriodRef(label=lbl, months=[lbl], relative=True), "latest such month")
        out.sort(key=lambda p: p[0])
        seen: set[str] = set()
        refs: list[PeriodRef] = []
        for _, ref in out:
            if ref.label not in seen:
                seen.add(ref.label)
                refs.append(ref)
        return refs

    @staticmethod
    def _unread_dates(text: str, periods: list[PeriodRef]) -> list[str]:
        """Dates in the question that no parsed period accounts for: ask rather than answer another period."""
        covered = {m for p in periods for m in p.months}
        unread: list[str] = []
        for m in re.finditer(r"\b(\d{4})-(\d{2})(?:-\d{2})?\b", text):
            if f"{m.group(1)}-{m.group(2)}" not in covered:
                unread.append(m.group(0))
        for m in re.finditer(rf"\b({'|'.join(MONTHS)})\b(?:\s+(\d{{4}}))?", text):
            if m.group(1) == "may" and not m.group(2):
                continue  # the verb
            month = MONTH_FULL[m.group(1)]
            if not any(int(c[5:]) == month and (not m.group(2) or c[:4] == m.group(2)) for c in covered):
                unread.append(m.group(0))
        return unread

    # ------------------------------------------------------------------ classify

    def _shocks(self, text: str, why: Trail) -> tuple[list[Shock], list[_Span]]:
        """What-if changes: "<account> (cost) rises|falls|… (by) N%"."""
        shocks: list[Shock] = []
        spans: list[_Span] = []
        phrases = "|".join(re.escape(p) for p in sorted(self.account_phrases, key=len, reverse=True))
        pattern = (
            rf"(?<![\w-])({phrases})(?:\s+(?:costs?|prices?|spend|expenses?))?\s+(?:were\s+to\s+|would\s+)?"
            rf"({'|'.join(SHOCK_UP + SHOCK_DOWN)})\s+(?:by\s+)?(\d+(?:\.\d+)?)\s*(?:%|percent|per cent)"
        )
        for m in re.finditer(pattern, text):
            code, label = self.account_phrases[m.group(1)]
            sign = -1.0 if m.group(2) in SHOCK_DOWN else 1.0
            shocks.append(Shock(account=code, label=label, change_pct=sign * float(m.group(3))))
            spans.append(_Span(m.start(1), m.end(1)))
            why.match(
                "shock",
                m.group(0),
                f"{code} {sign * float(m.group(3)):+g}%",
                0.95,
                f"'{m.group(0)}' → shock {label} {sign * float(m.group(3)):+g}%",
            )
        return shocks, spans

    def _derived(self, text: str, why: Trail) -> tuple[list[str], list[_Span]]:
        derived: list[str] = []
        spans: list[_Span] = []
        for phrase in sorted(DERIVED_METRICS, key=len, reverse=True):
            for m in re.finditer(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])", text):
                span = _Span(m.start(), m.end())
                if any(span.overlaps(t) for t in spans):
                    continue
                spans.append(span)
                name = DERIVED_METRICS[phrase]
                if name not in derived:
                    derived.append(name)
                    why.match("derived", phrase, name, 0.95, f"'{phrase}' → derived metric {name}")
        return derived, spans

    def extract(self, question: str, as_of: date) -> Extraction:
        """Slots and intent cues: everything deterministic about a question, before an intent is chosen."""
        raw = " ".join(question.replace("&", " and ").split())
        text = raw.lower()
        why = Trail()
        shocks, shock_spans = self._shocks(text, why)
        derived, derived_spans = self._derived(text, why)
        accounts, metrics, excluded = self._accounts(text, why, taken=[*shock_spans, *derived_spans])
        entities, scope, regions = self._entities(raw, text, why)
        periods = self._periods(text, as_of, why)
        unread = self._unread_dates(text, periods)
        basis = next((b for b, pattern in GROWTH_BASIS if re.search(pattern, text)), "")
        if basis == "yoy":
            # "September 2026 vs the same month last year": "last year" names the comparison basis, not the
            # calendar year 2025 as a second period, when another, shorter period is named.
            last_year = str(as_of.year - 1)
            if any(len(p.months) < 12 for p in periods):
                periods = [p for p in periods if not (p.relative and p.label == last_year)]
        if len(entities) > 1 and scope != "group":
            axis = "entity"
        elif (
            len(periods) > 1
            or basis
            or re.search(r"\b(?:vs\.?|versus|compared (?:to|with)) (?:last|prior|the previous)", text)
        ):
            axis = "period"
        else:
            axis = ""
        slots = Slots(
            metrics=metrics,
            accounts=accounts,
            entities=entities,
            entity_scope=scope,
            regions=regions,
            periods=periods,
            exclude_accounts=excluded,
            derived=derived,
            comparison_axis=axis,
            growth_basis=basis,
            shocks=shocks,
        )
        cues = [intent for intent, pattern in INTENT_CUES if re.search(pattern, text)]
        if re.search(r"\b(?:MoM|MOM|M/M)\b", raw):
            # Only the capitalised abbreviation: "my mom" is not month-over-month growth.
            slots.growth_basis = slots.growth_basis or "mom"
            slots.comparison_axis = slots.comparison_axis or "period"
            if Intent.GROWTH not in cues:
                cues.append(Intent.GROWTH)
        if shocks and Intent.SCENARIO not in cues:
            cues.insert(0, Intent.SCENARIO)
        return Extraction(text=text, slots=slots, cues=cues, unread=unread, explanations=why)

    def rule_intent(self, ex: Extraction) -> tuple[Intent, float, str]:
        """The rules' own choice of intent, how sure they are of it, and why.

        Rules are sure (0.97) only on explicit evidence: one analysis cue, an instruction-override attempt, or a
        document question without a period. A metric named with no cue is *probably* a lookup (0.9), which is
        below the rules' deciding threshold so the trained model reviews it: paraphrased analyses ("how fast did
        opex expand", "rank the entities") carry no cue the rules know.
        """
        text, slots = ex.text, ex.slots
        if re.search(OVERRIDE_CUES, text):
            return Intent.OUT_OF_SCOPE, 0.97, "out_of_scope: the question tries to override instructions or rules"
        document = bool(re.search(DOCUMENT_CUES, text))
        if ex.cues:
            if len(ex.cues) > 1 or document:
                others = ", ".join([c.value for c in ex.cues[1:]] + (["document_question"] if document else []))
                return ex.cues[0], 0.7, f"intent {ex.cues[0].value}: cue words matched, but also cues for {others}"
            return ex.cues[0], 0.97, f"intent {ex.cues[0].value}: cue words matched"
        if document and not slots.periods and not re.search(r"\bexplain\b", text):
            # "What does the travel policy say?" names an account but asks about a document.
            return Intent.DOCUMENT_QUESTION, 0.97, "intent document_question: asks what a document says, no period"
        if slots.accounts or slots.derived:
            return Intent.METRIC_LOOKUP, 0.9, "intent metric_lookup: a metric is named and no analysis cue"
        if document:
            return Intent.DOCUMENT_QUESTION, 0.9, "intent document_question: asks about a document, names no metric"
        return Intent.OUT_OF_SCOPE, 0.6, "no metric, document or analysis cue"

    def decide(
        self,
        ex: Extraction,
        intent: Intent,
        confidence: float,
        method: str = "rule",
        complexity: Complexity | None = None,
    ) -> ClassifyResult:
        """A complete result for a chosen intent: clarifications for missing slots, complexity, confidence caps."""
        slots = ex.slots
        clarifications: list[str] = []
        if intent == Intent.OUT_OF_SCOPE:
            clarifications.append(
                "Docket answers questions about the ledger and finance documents; which metric, entity and period "
                "do you mean (for example: revenue for MER-US in October 2026)?"
            )
            confidence = min(confidence, 0.3)
        elif intent != Intent.DOCUMENT_QUESTION:
            if not slots.accounts and not slots.derived:
                clarifications.append("Which metric do you mean (for example revenue, COGS, payroll, operating costs)?")
            if not slots.entities:
                names = ", ".join(sorted(self.catalog.entities)[:3])
                clarifications.append(f"Which entity or region (for example {names}, a region, or the group)?")
            if not slots.periods:
                clarifications.append("Which period (for example last month, March 2026, Q2 2026)?")
            if ex.unread:
                clarifications.append(
                    f"I could not read the date{'s' if len(ex.unread) > 1 else ''} {', '.join(ex.unread)}; which "
                    "months do you mean (for example March 2026, or March to May 2026)?"
                )
            if clarifications:
                confidence = min(confidence, 0.4)
            if any(p.relative for p in slots.periods):
                confidence = min(confidence, 0.96)
        return ClassifyResult(
            intent=intent,
            complexity=complexity or complexity_for(intent, slots),
            method=method,
            confidence=round(confidence, 4),
            slots=slots,
            explanations=list(ex.explanations),
            matches=list(ex.explanations.matches),
            clarifications=clarifications,
            classifier_version=CLASSIFIER_VERSION,
        )

    def classify(self, question: str, as_of: date) -> ClassifyResult:
        """Rules alone (layer 1)."""
        ex = self.extract(question, as_of)
        intent, confidence, why = self.rule_intent(ex)
        ex.explanations.append(why)
        result = self.decide(ex, intent, confidence)
        result.layer_confidence = {"rule": confidence}
        return result


def complexity_for(intent: Intent, slots: Slots) -> Complexity:
    """Seed semantics: one figure · a comparison (entities or periods) · multi-step analysis · scenario."""
    if intent in (Intent.DOCUMENT_QUESTION, Intent.OUT_OF_SCOPE):
        return Complexity.SIMPLE
    if intent == Intent.SCENARIO:
        return Complexity.EXPERT
    if intent in (Intent.VARIANCE_EXPLANATION, Intent.TREND):
        return Complexity.COMPLEX
    if intent in (Intent.COMPARISON, Intent.GROWTH) or len(slots.entities) > 1 or len(slots.periods) > 1:
        return Complexity.MODERATE
    return Complexity.SIMPLE
