"""Content rating systems and their ratings, as each body publishes them. A rating outside its
system (MPAA 'PG13', 'TV-MA' under MPAA) would reach profiles' parental controls as a value
that no control knows how to rank."""

from __future__ import annotations

# Each rating with the age band it falls in (``identity.accounts.AGE_BANDS``: the bands
# streaming services' profile controls use), read from each body's own guidance; where a rating is
# advisory between two bands, the older one.
SYSTEMS: dict[str, dict[str, int]] = {
    # Motion Picture Association (US); NR: not rated
    "MPAA": {"G": 0, "PG": 7, "PG-13": 13, "R": 18, "NC-17": 18, "NR": 18},
    # US TV Parental Guidelines
    "TV": {"TV-Y": 0, "TV-Y7": 7, "TV-Y7-FV": 7, "TV-G": 0, "TV-PG": 7, "TV-14": 16, "TV-MA": 18},
    # British Board of Film Classification
    "BBFC": {"U": 0, "PG": 7, "12A": 13, "12": 13, "15": 16, "18": 18, "R18": 18},
    # Freiwillige Selbstkontrolle der Filmwirtschaft (DE)
    "FSK": {"0": 0, "6": 7, "12": 13, "16": 16, "18": 18},
    # Arcom, formerly CSA (FR); TP: tous publics
    "CSA": {"TP": 0, "-10": 13, "-12": 13, "-16": 16, "-18": 18},
    # Australian Classification Board
    "ACB": {"G": 0, "PG": 7, "M": 16, "MA15+": 16, "R18+": 18, "X18+": 18},
    # Canadian Home Video Rating System
    "CHVRS": {"G": 0, "PG": 7, "14A": 16, "18A": 18, "R": 18, "A": 18},
    # Film Classification and Rating Organization (JP)
    "EIRIN": {"G": 0, "PG12": 13, "R15+": 16, "R18+": 18},
}


def minimum_age(system: str | None, value: str | None) -> int:
    """The age band of a title's rating; 18 for one this table does not know (a title
    ingested before ratings were checked): a profile control errs towards keeping it out."""
    return SYSTEMS.get(system or "", {}).get(value or "", 18)


def rating_problem(system: str, value: str) -> tuple[str, str] | None:
    """(field, message) when ``value`` is not a rating of ``system`` or the system is unknown."""
    ratings = SYSTEMS.get(system)
    if ratings is None:
        near = next((s for s in SYSTEMS if s.lower() == system.lower()), None)
        hint = f"did you mean {near!r}? " if near else ""
        return "rating.system", (f"{system!r} is not a rating system ReelStream knows: {hint}one of "
                                 f"{', '.join(SYSTEMS)} (a new one is added in reelstream/ingest/ratings.py)")
    if value not in ratings:
        near = next((r for r in ratings if r.replace("-", "").lower() == value.replace("-", "").lower()), None)
        hint = f"did you mean {near!r}? " if near else ""
        return "rating.value", f"{value!r} is not among {system}'s ratings: {hint}one of {', '.join(ratings)}"
    return None
