"""Mixed clusters as written: ``h800:512+ascend-910b:1024`` (chip types and their counts).

Parsing checks the syntax only (a chip and a positive whole count per part); the chips are
resolved against the catalog when the mix is loaded, so an unknown chip fails there with the
list of known ones. A chip named twice is one type with the counts added.
"""

from __future__ import annotations

from dataclasses import dataclass

from moebench.errors import InputError

PART_SEPARATOR = "+"
COUNT_SEPARATOR = ":"


@dataclass(frozen=True)
class MixPart:
    chip: str
    """Catalog name or hardware YAML path, as written."""
    count: int


@dataclass(frozen=True)
class MixSpec:
    """A mixed cluster: one part per chip type, in the order written."""

    parts: tuple[MixPart, ...]

    @property
    def label(self) -> str:
        return PART_SEPARATOR.join(f"{p.chip}{COUNT_SEPARATOR}{p.count}" for p in self.parts)

    @property
    def num_chips(self) -> int:
        return sum(p.count for p in self.parts)


def looks_like_mix(text: str) -> bool:
    """Whether a chip option holds a mix (``CHIP:COUNT[+CHIP:COUNT...]``) rather than a chip or a
    chip on a named stack release (``CHIP:STACK``, whose part after the colon is no count)."""
    if PART_SEPARATOR in text:
        return True
    _, sep, after = text.rpartition(COUNT_SEPARATOR)
    return bool(sep) and after.strip().isdigit()


def _count(raw: str, part: str, option: str) -> int:
    raw = raw.strip()
    if not raw.isdigit():
        raise InputError(option, None, f"in {part!r}: the count after ':' must be a whole "
                                        f"number of chips, got {raw!r} (e.g. h800:512)")
    count = int(raw)
    if count < 1:
        raise InputError(option, None, f"in {part!r}: the count must be at least 1, got {count}")
    return count


def parse_mix(text: str, option: str = "--mix") -> MixSpec:
    """``CHIP:COUNT+CHIP:COUNT...`` as a :class:`MixSpec` (syntax only; chips load later)."""
    if not text or not text.strip():
        raise InputError(option, None, "is empty; expected CHIP:COUNT+CHIP:COUNT, "
                                       "e.g. h800:512+ascend-910b:1024")
    counts: dict[str, int] = {}
    for raw_part in text.split(PART_SEPARATOR):
        part = raw_part.strip()
        chip, sep, raw_count = part.rpartition(COUNT_SEPARATOR)
        if not sep or not chip.strip():
            raise InputError(option, None, f"expected CHIP:COUNT for each part of the mix, got "
                                           f"{part!r} (e.g. h800:512+ascend-910b:1024)")
        chip = chip.strip()
        counts[chip] = counts.get(chip, 0) + _count(raw_count, part, option)
    return MixSpec(tuple(MixPart(chip, n) for chip, n in counts.items()))
