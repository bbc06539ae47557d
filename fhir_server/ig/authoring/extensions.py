"""The IG's extensions: what a referral, an encounter, an organisation or a coverage carries beyond R4."""

from __future__ import annotations

from fhir_server.ig.authoring.dsl import binding, complex_extension, el, reference, simple_extension, structure_definition, sd_url, slicing, vs_url
from fhir_server.ig.authoring.terminology import system

CODING = [{"code": "Coding"}]
CODEABLE_CONCEPT = [{"code": "CodeableConcept"}]

EXTENSIONS: list[dict] = [
    simple_extension(
        "referral-direction",
        "Referral direction",
        "转诊方向：上转、下转或平转 / Direction of the referral between facility levels.",
        ["ServiceRequest"],
        CODING,
        value_binding=binding("required", vs_url("referral-direction")),
        zh="转诊方向",
        en="Referral direction",
    ),
    simple_extension(
        "referral-scope",
        "Referral scope",
        "转诊范围：医联体内、市内、省内或跨省，决定适用的转诊规则 / Which regional rule set governs the referral.",
        ["ServiceRequest"],
        CODING,
        value_binding=binding("required", vs_url("referral-scope")),
        zh="转诊范围",
        en="Referral scope",
    ),
    simple_extension(
        "consent-reference",
        "Referral consent",
        "患者转诊知情同意书 / The patient's informed consent to this referral.",
        ["ServiceRequest"],
        reference("referral-consent"),
        zh="转诊知情同意",
        en="Informed consent to the referral",
    ),
    complex_extension(
        "consent-exemption",
        "Consent exemption",
        "未事先取得知情同意的豁免（如急危重症抢救）及原因 / Exemption from prior informed consent, with its reason.",
        ["ServiceRequest"],
        [
            {
                "name": "reason",
                "zh": "豁免原因",
                "en": "Exemption reason",
                "min": 1,
                "types": CODEABLE_CONCEPT,
                "binding": binding("required", vs_url("consent-exemption-reason")),
            },
            {"name": "note", "zh": "说明", "en": "Explanation", "types": [{"code": "string"}]},
        ],
        zh="知情同意豁免",
        en="Consent exemption",
    ),
    complex_extension(
        "cross-region-assessment",
        "Cross-region necessity assessment",
        "跨统筹区/跨省就医必要性评估：由二级及以上医院副主任医师及以上人员评估 / Necessity assessment for"
        " cross-pool or cross-province care, by an associate chief physician or above of a level-2/3 hospital.",
        ["ServiceRequest"],
        [
            {"name": "assessor", "zh": "评估人", "en": "Assessor", "min": 1, "types": reference("cn-practitioner-role")},
            {"name": "date", "zh": "评估日期", "en": "Assessment date", "min": 1, "types": [{"code": "dateTime"}]},
            {
                "name": "conclusion",
                "zh": "评估结论",
                "en": "Conclusion",
                "min": 1,
                "types": CODEABLE_CONCEPT,
                "binding": binding("required", vs_url("assessment-conclusion")),
            },
        ],
        zh="跨区域转诊必要性评估",
        en="Cross-region necessity assessment",
    ),
    complex_extension(
        "reserved-resource",
        "Reserved resource requested",
        "申请使用的预留号源或床位 / The reserved outpatient slot or bed the referral asks for.",
        ["ServiceRequest"],
        [
            {
                "name": "type",
                "zh": "资源类型",
                "en": "Resource type",
                "min": 1,
                "types": CODING,
                "binding": binding("required", vs_url("reserved-resource-type")),
            },
            {"name": "booking", "zh": "预约", "en": "Booked slot, appointment or bed location", "types": reference("Slot", "Appointment", "Location")},
        ],
        zh="预留资源",
        en="Reserved resource requested",
    ),
    simple_extension(
        "referral-consortium",
        "Referral consortium",
        "转诊所在的医联体 / The medical consortium within which the referral is made.",
        ["ServiceRequest", "Task"],
        reference("cn-organization"),
        zh="所属医联体",
        en="Medical consortium",
    ),
    complex_extension(
        "deductible-continuation",
        "Deductible continuation",
        "起付线连续计算或免收：同一疾病过程转诊 / Inpatient deductible counted continuously or waived for a"
        " referral in the same disease episode.",
        ["Encounter"],
        [
            {
                "name": "handling",
                "zh": "起付线处理",
                "en": "Deductible handling",
                "min": 1,
                "types": CODING,
                "binding": binding("required", vs_url("deductible-handling")),
            },
            {"name": "previousEncounter", "zh": "前次就诊", "en": "Previous encounter of the episode", "types": reference("Encounter")},
        ],
        zh="起付线连续计算",
        en="Deductible continuation",
    ),
    structure_definition(
        "facility-level",
        "Extension",
        "Facility level and grade",
        "医疗机构级别与等次，两个编码 / Hospital level and grade, as two codings of one concept.",
        [
            el("Extension", "医疗机构级别等次", "Facility level and grade", definition=("医院级别（一、二、三级）与等次（甲、乙、丙等）", "Hospital level and grade")),
            el("Extension.extension", max="0"),
            el("Extension.url", fixedUri=sd_url("facility-level")),
            el("Extension.value[x]", "级别等次", "Level and grade", min=1, type=CODEABLE_CONCEPT),
            el("Extension.value[x].coding", min=1, slicing=slicing("value", "system", "closed", "level and grade by code system")),
            el(
                "Extension.value[x].coding:level",
                "级别",
                "Level",
                min=1,
                max="1",
                binding=binding("required", vs_url("facility-level")),
            ),
            el("Extension.value[x].coding:level.system", min=1, fixedUri=system("facility-level")),
            el("Extension.value[x].coding:level.code", min=1),
            el(
                "Extension.value[x].coding:grade",
                "等次",
                "Grade",
                min=0,
                max="1",
                binding=binding("required", vs_url("facility-grade")),
            ),
            el("Extension.value[x].coding:grade.system", min=1, fixedUri=system("facility-grade")),
            el("Extension.value[x].coding:grade.code", min=1),
        ],
        kind="complex-type",
        context=["Organization"],
    ),
    simple_extension(
        "insured-region",
        "Insured pooling region",
        "参保地统筹区（行政区划代码）/ The insurance pooling region where the patient is insured.",
        ["Coverage"],
        CODING,
        value_binding=binding("extensible", vs_url("gbt-2260")),
        zh="参保地统筹区",
        en="Insured pooling region",
    ),
    complex_extension(
        "offsite-care-filing",
        "Off-site care filing",
        "异地就医备案：备案号、就医地与有效期 / Registration for care outside the insured region.",
        ["Coverage"],
        [
            {"name": "filingNumber", "zh": "备案号", "en": "Filing number", "min": 1, "types": [{"code": "string"}]},
            {
                "name": "placeOfCare",
                "zh": "就医地",
                "en": "Place of care",
                "min": 1,
                "types": CODING,
                "binding": binding("extensible", vs_url("gbt-2260")),
            },
            {"name": "period", "zh": "备案有效期", "en": "Validity period", "types": [{"code": "Period"}]},
        ],
        zh="异地就医备案",
        en="Off-site care filing",
    ),
]
