"""Content rating systems and their ratings, as each body publishes them. A rating outside its
system (MPAA 'PG13', 'TV-MA' under MPAA) would reach profiles' parental controls as a value
that no control knows how to rank."""

from __future__ import annotations

SYSTEMS: dict[str, tuple[str, ...]] = {
    "MPAA": ("G", "PG", "PG-13", "R", "NC-17", "NR"),  # Motion Picture Association (US); NR: not rated
    "TV": ("TV-Y", "TV-Y7", "TV-Y7-FV", "TV-G", "TV-PG", "TV-14", "TV-MA"),  # US TV Parental Guidelines
    "BBFC": ("U", "PG", "12A", "12", "15", "18", "R18"),  # British Board of Film Classification
    "FSK": ("0", "6", "12", "16", "18"),  # Freiwillige Selbstkontrolle der Filmwirtschaft (DE)
    "CSA": ("TP", "-10", "-12", "-16", "-18"),  # Arcom, formerly CSA (FR); TP: tous publics
    "ACB": ("G", "PG", "M", "MA15+", "R18+", "X18+"),  # Australian Classification Board
    "CHVRS": ("G", "PG", "14A", "18A", "R", "A"),  # Canadian Home Video Rating System
    "EIRIN": ("G", "PG12", "R15+", "R18+"),  # Film Classification and Rating Organization (JP)
}


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
