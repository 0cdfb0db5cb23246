"""A hand-written 2027 holiday notice for tests — NOT the State Council's (not published when written).

It follows the shape of recent notices so that deadlines across 元旦 and 春节 2027 can be counted by
hand: 元旦 1–3 January off; 春节 5–12 February (Fri–Fri) off with Sunday 31 January and Saturday
20 February worked (调休上班); the other holidays on their statutory dates.
"""

from __future__ import annotations

from datetime import date, timedelta

NOTICE_2027 = """date,kind,name
2027-01-01,holiday,元旦
2027-01-02,holiday,元旦
2027-01-03,holiday,元旦
2027-01-31,workday,春节
{spring}
2027-02-20,workday,春节
2027-04-05,holiday,清明
2027-05-01,holiday,劳动节
2027-05-02,holiday,劳动节
2027-05-03,holiday,劳动节
2027-06-09,holiday,端午
2027-09-15,holiday,中秋
2027-10-01,holiday,国庆节
2027-10-02,holiday,国庆节
2027-10-03,holiday,国庆节
""".format(spring="\n".join(f"{date(2027, 2, 5) + timedelta(days=i)},holiday,春节" for i in range(8)))
