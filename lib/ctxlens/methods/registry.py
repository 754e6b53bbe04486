"""Every analysis a page shows, registered by name with what it needs.

A method declares the capabilities a model must have (`models.catalog`: trained heads such as
the MLM head, or what its family's forward gives, such as attentions or queries and keys),
its options and the function that runs it. Pages ask `available(names, model)` which of their
methods apply to the chosen model and show the reasons for the others, instead of branching
on the family; the model pickers offer the models for which at least one method applies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import CapabilityMissing
from ..models import catalog as cat


@dataclass(frozen=True)
class Method:
    name: str  # registry key, stable (URLs, tests)
    title: str  # what a page calls it
    summary: str  # one line: what it shows
    needs: tuple[frozenset[str], ...]  # every group must be met by one of its capabilities
    run: Callable
    options: Mapping[str, object] = field(default_factory=dict)  # option -> default

    def missing(self, spec: cat.ModelSpec) -> str | None:
        """Why this method does not apply to `spec`, or None when it does."""
        for group in self.needs:
            if not any(spec.can(c) for c in group):
                return (f"{self.title} needs {_labels(group)}, which {spec.key} ({spec.family.label}) "
                        f"does not have. {who_has(group)}")
        return None

    def applies(self, spec: cat.ModelSpec) -> bool:
        return self.missing(spec) is None


METHODS: dict[str, Method] = {}


def need(*alternatives: str) -> frozenset[str]:
    """One requirement, met by any of `alternatives`."""
    return frozenset(alternatives)


def register(name: str, title: str, summary: str, needs: Iterable[frozenset[str] | str], run: Callable,
             **options) -> Method:
    groups = tuple(need(n) if isinstance(n, str) else n for n in needs)
    unknown = {c for g in groups for c in g} - set(cat.CAPABILITY_LABELS)
    if unknown:
        raise ValueError(f"method {name!r} needs unknown capabilities {sorted(unknown)}")
    METHODS[name] = Method(name, title, summary, groups, run, dict(options))
    return METHODS[name]


def method(name: str) -> Method:
    if name not in METHODS:
        raise KeyError(f"no method {name!r}; registered: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def available(names: Iterable[str], spec: cat.ModelSpec) -> tuple[list[Method], dict[str, str]]:
    """The methods among `names` that apply to `spec`, and {title: why not} for the others."""
    usable, why_not = [], {}
    for m in map(method, names):
        reason = m.missing(spec)
        if reason is None:
            usable.append(m)
        else:
            why_not[m.title] = reason
    return usable, why_not


def check(name: str, spec: cat.ModelSpec) -> None:
    """CapabilityMissing with the reason, unless method `name` applies to `spec`."""
    reason = method(name).missing(spec)
    if reason is not None:
        raise CapabilityMissing(reason)


def models_for(names: Iterable[str], specs: Iterable[cat.ModelSpec] | None = None) -> list[str]:
    """Keys of the catalog models (or of `specs`) to which at least one of the methods applies."""
    methods = [method(n) for n in names]
    specs = cat.CATALOG.values() if specs is None else specs
    return [s.key for s in specs if any(m.applies(s) for m in methods)]


def who_has(capabilities: Iterable[str]) -> str:
    """Which families give one of `capabilities` (what a family's forward gives), else which
    real catalog models have it (a trained head), as a sentence."""
    capabilities = set(capabilities)
    families = [f.label for f, given in cat.FAMILY_CAPABILITIES.items() if given & capabilities]
    if families and not capabilities & cat.HEADS:
        return f"Every {' and every '.join(families)} comes with it."
    have = [k for k, s in cat.CATALOG.items() if not s.test_model and any(s.can(c) for c in capabilities)]
    if have:
        return "Models that have it: " + ", ".join(have) + "."
    return "No catalog model has it: load a checkpoint fine-tuned with that head."


def _labels(group: frozenset[str]) -> str:
    def label(c: str) -> str:
        return f"a trained head for {cat.CAPABILITY_LABELS[c]}" if c in cat.HEADS else cat.CAPABILITY_LABELS[c]

    return " or ".join(sorted(map(label, group)))
