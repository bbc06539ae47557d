"""Build HL7 v2 test messages field by field (positions written as numbers, as the standard numbers them)."""

from __future__ import annotations


def segment(name: str, fields: dict[int, str]) -> str:
    last = max(fields) if fields else 0
    return "|".join([name] + [fields.get(i, "") for i in range(1, last + 1)])


def msh(message_type: str, control_id: str, sender: str = "QXRMYY^县人民医院", version: str = "2.5", charset: str = "",
        timestamp: str = "20261123093000", application: str = "HIS") -> str:
    fields = {3: application, 4: sender, 5: "REFPLAT", 6: "PLATFORM", 7: timestamp, 9: message_type, 10: control_id, 11: "P", 12: version}
    if charset:
        fields[18] = charset
    last = max(fields)
    return "MSH|^~\\&|" + "|".join(fields.get(i, "") for i in range(3, last + 1))


def message(*segments: str) -> str:
    return "\r".join(segments) + "\r"


def adt_a04(control_id: str, national_id: str, name: str = "张^三", visit: str = "", charset: str = "") -> str:
    pv1 = {1: "1", 2: "O", 3: "内科门诊^^^QXRMYY", 19: f"{visit}^^^QXRMYY"} if visit else {1: "1", 2: "O"}
    return message(
        msh("ADT^A04^ADT_A01", control_id, charset=charset),
        segment("EVN", {1: "A04"}),
        segment("PID", {1: "1", 3: f"{national_id}^^^GMSFZ^ID", 5: name, 7: "19800202", 8: "F"}),
        segment("PV1", pv1),
    )
