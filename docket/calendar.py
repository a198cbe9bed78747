"""Month names, shared by everything that reads or writes periods in prose."""

MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
MONTHS_LOWER = tuple(m.lower() for m in MONTH_NAMES)
