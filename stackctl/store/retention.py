"""Which timestamped backups to keep (pure): the gateway's config backups (`reload`) and
the registry's (`add`) are pruned by the same rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

ID_FORMAT = "%Y%m%dT%H%M%SZ"  # a backup's ID: the UTC time it was taken (-2, -3 … on a tie)


def new_id(now: datetime, taken: set[str]) -> str:
    """An ID for a backup taken at `now`, not among `taken`."""
    backup_id, n = now.strftime(ID_FORMAT), 1
    while backup_id in taken:
        n += 1
        backup_id = f"{now.strftime(ID_FORMAT)}-{n}"
    return backup_id


def parse_id(backup_id: str) -> datetime:
    return datetime.strptime(backup_id.split("-")[0], ID_FORMAT).replace(tzinfo=UTC)


def retained(ids: list[str], now: datetime, recent: int = 10, days: int = 7,
             weeks: int = 4) -> set[str]:
    """The backups to keep: the `recent` newest, the newest of each of the last `days`
    calendar days (UTC, today included) and the newest of each of the last `weeks` weeks
    (Monday to Sunday, this one included)."""
    def monday(t: datetime) -> date:
        return t.date() - timedelta(days=t.weekday())

    newest_first = sorted(ids, key=parse_id, reverse=True)
    keep = set(newest_first[:recent])
    seen_days: set[date] = set()
    seen_weeks: set[date] = set()
    for backup_id in newest_first:
        when = parse_id(backup_id)
        if (now.date() - when.date()).days < days and when.date() not in seen_days:
            seen_days.add(when.date())
            keep.add(backup_id)
        week = monday(when)
        if (monday(now) - week).days < 7 * weeks and week not in seen_weeks:
            seen_weeks.add(week)
            keep.add(backup_id)
    return keep


