"""The IG's code systems, value sets and concept maps (Chinese displays, English designations).

Where a Chinese national standard defines the codes but no official FHIR URI / OID is certain, the
code system is published under the IG's canonical base and its description names the standard; the
codes themselves are the standard's. The resident identity card is the one national OID used directly.
"""

from __future__ import annotations

from fhir_server.ig.authoring.dsl import DATE, PUBLISHER, VERSION, code_system, cs_url, value_set, vs_url, whole_system_value_set
from fhir_server.ig.canonical import url

#: 居民身份证 (resident identity card number), national OID
NATIONAL_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
SNOMED = "http://snomed.info/sct"
TASK_STATUS = "http://hl7.org/fhir/task-status"
ADMINISTRATIVE_GENDER = "http://hl7.org/fhir/administrative-gender"

_NO_OID = " No official FHIR URI or OID is asserted for this table; the IG publishes it under its own canonical base until one is confirmed."

CODE_SYSTEMS: list[dict] = [
    code_system(
        "referral-direction",
        "Referral direction 转诊方向",
        "Direction of a referral between facility levels (上转/下转/平转).",
        [
            ("up", "上转", "Upward referral", "从下级医疗机构转往上级医疗机构。Referral to a higher-level institution."),
            ("down", "下转", "Downward referral", "从上级医疗机构转往下级（基层）医疗机构。Referral to a lower-level (base) institution."),
            ("lateral", "平转", "Lateral referral", "同级医疗机构之间的转诊。Referral between institutions of the same level."),
        ],
    ),
    code_system(
        "referral-scope",
        "Referral scope 转诊范围",
        "Which regional rule set governs a referral: within the consortium, city, province, or across provinces.",
        [
            ("within-consortium", "医联体内", "Within the medical consortium"),
            ("within-city", "市内跨医联体", "Within the city, between consortia"),
            ("within-province", "省内跨市", "Within the province, between cities"),
            ("cross-province", "跨省", "Cross-province"),
        ],
    ),
    code_system(
        "consent-exemption-reason",
        "Consent exemption reason 知情同意豁免原因",
        "Why a referral proceeded without the patient's prior informed consent.",
        [
            ("emergency", "急危重症抢救", "Emergency: life-threatening condition"),
            ("incapacitated", "患者无法表达且无法联系代理人", "Patient cannot consent and no proxy can be reached"),
            ("public-health", "突发公共卫生事件", "Public-health emergency"),
        ],
    ),
    code_system(
        "assessment-conclusion",
        "Cross-region assessment conclusion 跨区域转诊必要性评估结论",
        "Outcome of the necessity assessment required before cross-pool / cross-province care.",
        [
            ("necessary", "有必要转诊", "Referral necessary"),
            ("not-necessary", "无必要转诊", "Referral not necessary"),
        ],
    ),
    code_system(
        "reserved-resource-type",
        "Reserved resource type 预留资源类型",
        "Kind of capacity the lead hospital reserves for referred patients.",
        [
            ("outpatient-slot", "门诊号源", "Outpatient appointment slot"),
            ("bed", "床位", "Inpatient bed"),
            ("exam-slot", "检查预约", "Examination slot"),
        ],
    ),
    code_system(
        "referral-business-status",
        "Referral business status 转诊业务状态",
        "Business states of a referral Task, in the order a referral usually passes them; informed by the"
        " HL7 BSeR Task business statuses (created, accepted, declined, fulfilment started/completed,"
        " cancelled) and the NHS e-Referral Service states (awaiting booking, booked, rejected, returned).",
        [
            ("submitted", "已提交", "Submitted", "转出机构已发出转诊申请。The referring institution has sent the referral."),
            ("received", "已接收", "Received", "转诊中心已收到申请。The referral centre has received it."),
            ("under-review", "审核中", "Under review", "接收机构正在评估能否接收。The receiving side is assessing it."),
            ("accepted", "已接受", "Accepted", "接收机构同意接收。The receiving institution accepts the patient."),
            ("rejected", "已拒绝", "Rejected", "接收机构拒绝，须说明原因。Declined; a reason is required."),
            ("returned", "已退回补充", "Returned for information", "退回转出机构补充资料。Returned to the referrer for more information."),
            ("booked", "已预约", "Booked", "已预约号源或床位。An outpatient slot or bed is booked."),
            ("arrived", "已到诊", "Patient arrived", "患者已到接收机构就诊。The patient has arrived."),
            ("completed", "已完成", "Completed", "转诊诊疗已完成（含回转）。Care completed, including any return referral."),
            ("cancelled", "已撤销", "Cancelled", "转出方撤销转诊。Withdrawn by the referrer."),
            ("expired", "已超时", "Expired", "未在响应时限内处理。Not handled before the response deadline."),
        ],
    ),
    code_system(
        "facility-level",
        "Facility level 医疗机构级别",
        "Hospital level of the national hospital grading (医院分级管理): 一级/二级/三级, plus not rated.",
        [
            ("1", "一级", "Level 1"),
            ("2", "二级", "Level 2"),
            ("3", "三级", "Level 3"),
            ("9", "未定级", "Not rated"),
        ],
    ),
    code_system(
        "facility-grade",
        "Facility grade 医疗机构等次",
        "Grade within a hospital level (甲/乙/丙 等).",
        [("A", "甲等", "Grade A"), ("B", "乙等", "Grade B"), ("C", "丙等", "Grade C")],
    ),
    code_system(
        "institution-type",
        "Institution type 医疗卫生机构类别",
        "Kinds of medical institution named by the tiered-care policy, following the classes of WS 218"
        " (卫生机构（组织）分类与代码); these are IG codes, not the WS 218 code values." + _NO_OID,
        [
            ("general-hospital", "综合医院", "General hospital"),
            ("tcm-hospital", "中医医院", "Traditional Chinese medicine hospital"),
            ("specialty-hospital", "专科医院", "Specialty hospital"),
            ("community-health-centre", "社区卫生服务中心", "Community health service centre"),
            ("community-health-station", "社区卫生服务站", "Community health service station"),
            ("township-health-centre", "乡镇卫生院", "Township health centre"),
            ("village-clinic", "村卫生室", "Village clinic"),
        ],
    ),
    code_system(
        "consortium-type",
        "Consortium type 医联体类型",
        "Kinds of close-knit medical consortium (紧密型医联体).",
        [
            ("county-medical-community", "县域医共体", "County medical community"),
            ("urban-medical-group", "城市医疗集团", "Urban medical group"),
        ],
    ),
    code_system(
        "consortium-role",
        "Consortium role 医联体角色",
        "Role of an institution in a medical consortium.",
        [("lead", "牵头医院", "Lead hospital"), ("member", "成员单位", "Member institution")],
    ),
    code_system(
        "professional-title",
        "Professional title 专业技术职务",
        "Medical professional titles, codes of GB/T 8561 专业技术职务代码 (health series)." + _NO_OID,
        [
            ("231", "主任医师", "Chief physician"),
            ("232", "副主任医师", "Associate chief physician"),
            ("233", "主治医师", "Attending physician"),
            ("234", "医师", "Physician"),
            ("235", "医士", "Assistant physician"),
        ],
    ),
    code_system(
        "insurance-type",
        "Insurance type 险种类型",
        "Basic medical insurance types, codes of the National Healthcare Security Administration's"
        " 险种类型 (insutype) list." + _NO_OID,
        [
            ("310", "职工基本医疗保险", "Employee basic medical insurance"),
            ("320", "公务员医疗补助", "Civil servant medical subsidy"),
            ("330", "大额医疗费用补助", "Large medical expense subsidy"),
            ("390", "城乡居民基本医疗保险", "Urban and rural resident basic medical insurance"),
            ("392", "城乡居民大病医疗保险", "Resident critical illness insurance"),
        ],
    ),
    code_system(
        "gbt-2260",
        "Administrative division 行政区划代码 (GB/T 2260)",
        "Administrative division codes of GB/T 2260, as used for 医保 pooling regions and places of care;"
        " only the codes this IG and its examples need are included." + _NO_OID,
        [
            ("110000", "北京市", "Beijing"),
            ("310000", "上海市", "Shanghai"),
            ("510000", "四川省", "Sichuan Province"),
            ("510100", "成都市", "Chengdu"),
            ("620000", "甘肃省", "Gansu Province"),
            ("620100", "兰州市", "Lanzhou"),
            ("620102", "城关区", "Chengguan District, Lanzhou"),
            ("621100", "定西市", "Dingxi"),
            ("621102", "安定区", "Anding District, Dingxi"),
            ("621121", "通渭县", "Tongwei County"),
        ],
        content="fragment",
    ),
    code_system(
        "gbt-2261-1",
        "Sex 生理性别代码 (GB/T 2261.1)",
        "Sex codes of GB/T 2261.1; mapped to FHIR administrative gender by the ConceptMap gbt-2261-1-to-fhir." + _NO_OID,
        [
            ("0", "未知的性别", "Unknown"),
            ("1", "男性", "Male"),
            ("2", "女性", "Female"),
            ("9", "未说明的性别", "Not stated"),
        ],
    ),
    code_system(
        "icd-10-cn",
        "ICD-10 national clinical edition 疾病分类与代码国家临床版",
        "Diagnosis codes of the ICD-10 national clinical edition (国家临床版 2.0) that this IG's value sets"
        " and examples use (chronic conditions for long prescriptions, typical referral diagnoses)." + _NO_OID,
        [
            ("I10", "特发性（原发性）高血压", "Essential (primary) hypertension"),
            ("E11", "2型糖尿病", "Type 2 diabetes mellitus"),
            ("E11.9", "2型糖尿病不伴有并发症", "Type 2 diabetes mellitus without complications"),
            ("J44", "其他慢性阻塞性肺病", "Other chronic obstructive pulmonary disease"),
            ("J44.9", "慢性阻塞性肺病", "Chronic obstructive pulmonary disease, unspecified"),
            ("I63", "脑梗死", "Cerebral infarction"),
            ("I21", "急性心肌梗死", "Acute myocardial infarction"),
            ("I50", "心力衰竭", "Heart failure"),
            ("N18", "慢性肾脏病", "Chronic kidney disease"),
            ("C34", "支气管和肺恶性肿瘤", "Malignant neoplasm of bronchus and lung"),
            ("S72.0", "股骨颈骨折", "Fracture of neck of femur"),
        ],
        content="fragment",
    ),
    code_system(
        "admission-route",
        "Admission route 入院途径",
        "入院途径 value domain of the inpatient front page (住院病案首页) / WS 364; code 3 marks a referral admission." + _NO_OID,
        [
            ("1", "急诊", "Emergency department"),
            ("2", "门诊", "Outpatient department"),
            ("3", "其他医疗机构转入", "Transferred from another institution"),
            ("9", "其他", "Other"),
        ],
    ),
    code_system(
        "discharge-disposition",
        "Discharge disposition 离院方式",
        "离院方式 value domain of the inpatient front page (住院病案首页) / WS 364; code 3 marks a down-referral discharge." + _NO_OID,
        [
            ("1", "医嘱离院", "Discharged on medical advice"),
            ("2", "医嘱转院", "Transferred to another hospital on medical advice"),
            ("3", "医嘱转社区卫生服务机构/乡镇卫生院", "Transferred to a community or township health institution"),
            ("4", "非医嘱离院", "Discharged against medical advice"),
            ("5", "死亡", "Died"),
            ("9", "其他", "Other"),
        ],
    ),
    code_system(
        "deductible-handling",
        "Deductible handling 起付线处理",
        "How the inpatient deductible (起付线) applies to a referred stay: counted continuously when referred"
        " upward within the pooling region, waived when referred down in the same disease episode.",
        [
            ("continued", "起付线连续计算", "Deductible counted continuously"),
            ("waived", "免收起付线", "Deductible waived"),
            ("standard", "按规定收取起付线", "Standard deductible"),
        ],
    ),
    code_system(
        "consent-category",
        "Consent category 知情同意类别",
        "Kinds of consent this IG records.",
        [("referral-consent", "转诊知情同意", "Informed consent to referral")],
    ),
    code_system(
        "care-plan-category",
        "Care plan category 照护计划类别",
        "Kinds of care plan this IG records.",
        [("long-prescription", "长期处方", "Long prescription for a chronic condition")],
    ),
]

_BY_ID = {cs["id"]: cs for cs in CODE_SYSTEMS}


def system(id_: str) -> str:
    return _BY_ID[id_]["url"]


VALUE_SETS: list[dict] = [whole_system_value_set(cs) for cs in CODE_SYSTEMS] + [
    value_set(
        "chronic-conditions",
        "Long-prescription chronic conditions 长期处方适用慢性病",
        "Chronic conditions the national policy names for long prescriptions (hypertension, diabetes, COPD).",
        [
            {
                "system": system("icd-10-cn"),
                "concept": [
                    {"code": "I10", "display": "特发性（原发性）高血压"},
                    {"code": "E11", "display": "2型糖尿病"},
                    {"code": "E11.9", "display": "2型糖尿病不伴有并发症"},
                    {"code": "J44", "display": "其他慢性阻塞性肺病"},
                    {"code": "J44.9", "display": "慢性阻塞性肺病"},
                ],
            }
        ],
    ),
    value_set(
        "referral-task-status",
        "Referral task status 转诊任务状态",
        "The FHIR Task statuses a referral Task may take.",
        [
            {
                "system": TASK_STATUS,
                "concept": [
                    {"code": c}
                    for c in ("requested", "received", "accepted", "rejected", "cancelled", "in-progress", "on-hold", "completed", "failed")
                ],
            }
        ],
    ),
    value_set(
        "referral-reason",
        "Referral reason 转诊诊断",
        "Diagnoses for referral reasons: the ICD-10 national clinical edition.",
        [{"system": system("icd-10-cn")}],
    ),
]

CONCEPT_MAPS: list[dict] = [
    {
        "resourceType": "ConceptMap",
        "id": "gbt-2261-1-to-fhir",
        "url": url("ConceptMap", "gbt-2261-1-to-fhir"),
        "version": VERSION,
        "name": "Gbt226111ToFhir",
        "title": "GB/T 2261.1 sex → FHIR administrative gender 性别代码映射",
        "status": "active",
        "date": DATE,
        "publisher": PUBLISHER,
        "description": "Translates GB/T 2261.1 sex codes to FHIR AdministrativeGender, for Patient.gender.",
        "sourceUri": vs_url("gbt-2261-1"),
        "targetUri": "http://hl7.org/fhir/ValueSet/administrative-gender",
        "group": [
            {
                "source": system("gbt-2261-1"),
                "target": ADMINISTRATIVE_GENDER,
                "element": [
                    {"code": "0", "display": "未知的性别", "target": [{"code": "unknown", "display": "Unknown", "equivalence": "equivalent"}]},
                    {"code": "1", "display": "男性", "target": [{"code": "male", "display": "Male", "equivalence": "equivalent"}]},
                    {"code": "2", "display": "女性", "target": [{"code": "female", "display": "Female", "equivalence": "equivalent"}]},
                    {"code": "9", "display": "未说明的性别", "target": [{"code": "unknown", "display": "Unknown", "equivalence": "wider"}]},
                ],
            }
        ],
    }
]

__all__ = ["CODE_SYSTEMS", "VALUE_SETS", "CONCEPT_MAPS", "NATIONAL_ID_SYSTEM", "SNOMED", "system", "cs_url"]
