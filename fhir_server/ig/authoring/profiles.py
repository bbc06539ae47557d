"""The IG's resource profiles: referral, task, encounter, long prescription, coverage and the actors.

Each profile constrains one R4 resource; short texts are Chinese with the English in brackets. The
referral record's content follows WS/T 483.20 (转诊（院）记录, HSDS13.00.001): referring and receiving
institutions, reason and diagnosis, summary of findings and treatment (supportingInfo), and advice.
"""

from __future__ import annotations

from fhir_server.ig.authoring.dsl import (
    binding,
    constraint,
    el,
    extension_type,
    reference,
    sd_url,
    slicing,
    structure_definition,
    vs_url,
)
from fhir_server.ig.authoring.terminology import NATIONAL_ID_SYSTEM, SNOMED, system
from fhir_server.ig.canonical import identifier_system

INSURANCE_CARD_SYSTEM = identifier_system("insurance-card")
HEALTH_CARD_SYSTEM = identifier_system("health-card")
USCI_SYSTEM = identifier_system("usci")
LICENCE_SYSTEM = identifier_system("medical-institution-licence")
PHYSICIAN_LICENCE_SYSTEM = identifier_system("physician-licence")
REFERRAL_NUMBER_SYSTEM = identifier_system("referral-number")

#: SNOMED CT 3457005 |Patient referral|
REFERRAL_CATEGORY = {"coding": [{"system": SNOMED, "code": "3457005"}]}
TASK_FULFILL = {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]}


def _ext(resource: str, slice_name: str, extension_id: str, zh: str, en: str, min_: int = 0, max_: str = "1") -> dict:
    return el(f"{resource}.extension:{slice_name}", zh, en, min=min_, max=max_, type=extension_type(extension_id), ms=True)


def _extension_slicing(resource: str) -> dict:
    return el(f"{resource}.extension", slicing=slicing("value", "url"))


def _identifier_slice(resource: str, name: str, system_uri: str, zh: str, en: str, min_: int = 0) -> list[dict]:
    prefix = f"{resource}.identifier:{name}"
    return [
        el(prefix, zh, en, min=min_, max="1", ms=True),
        el(f"{prefix}.system", min=1, fixedUri=system_uri),
        el(f"{prefix}.value", min=1),
    ]


def _ext_url(extension_id: str) -> str:
    return sd_url(extension_id)


#: WS/T 483.20 转诊（院）记录 (HSDS13.00.001): the referral record's content, element by element
WST_483_20 = {"identity": "wst483-20", "name": "WS/T 483.20 转诊（院）记录 (HSDS13.00.001)"}


def _wst(text: str) -> dict[str, str]:
    return {"wst483-20": text}


REFERRAL_REQUEST = structure_definition(
    "referral-request",
    "ServiceRequest",
    "Referral request 转诊申请",
    "转诊申请单：双向转诊的核心资源 / A two-way referral between institutions of the tiered-care system.",
    [
        el(
            "ServiceRequest",
            "转诊申请",
            "Referral request",
            definition=("医疗机构之间的双向转诊申请，记录转出、转入机构、转诊原因与病情摘要", "A referral from one institution to another"),
            maps=_wst("转诊（院）记录"),
            constraint=[
                constraint(
                    "ref-1",
                    "生效的转诊须有知情同意或豁免",
                    "An active referral has the patient's consent or an exemption",
                    f"status != 'active' or extension('{_ext_url('consent-reference')}').exists()"
                    f" or extension('{_ext_url('consent-exemption')}').exists()",
                ),
                constraint(
                    "ref-2",
                    "跨省转诊须有必要性评估",
                    "A cross-province referral has a necessity assessment",
                    f"extension('{_ext_url('referral-scope')}').value.ofType(Coding).where(code = 'cross-province').exists()"
                    f" implies extension('{_ext_url('cross-region-assessment')}').exists()",
                ),
            ],
        ),
        _extension_slicing("ServiceRequest"),
        _ext("ServiceRequest", "direction", "referral-direction", "转诊方向", "Direction", 1),
        _ext("ServiceRequest", "scope", "referral-scope", "转诊范围", "Scope", 1),
        _ext("ServiceRequest", "consent", "consent-reference", "知情同意", "Consent"),
        _ext("ServiceRequest", "consentExemption", "consent-exemption", "知情同意豁免", "Consent exemption"),
        _ext("ServiceRequest", "assessment", "cross-region-assessment", "必要性评估", "Necessity assessment"),
        _ext("ServiceRequest", "reservedResource", "reserved-resource", "预留资源", "Reserved resource", 0, "*"),
        _ext("ServiceRequest", "consortium", "referral-consortium", "所属医联体", "Consortium"),
        el("ServiceRequest.identifier", "转诊单号", "Referral number", min=1, ms=True),
        el("ServiceRequest.status", "状态", "Status", ms=True),
        el("ServiceRequest.intent", "意图", "Intent", fixedCode="order", ms=True),
        el("ServiceRequest.category", "类别", "Category", min=1, ms=True, slicing=slicing("pattern", "$this")),
        el("ServiceRequest.category:referral", "转诊", "Referral", min=1, max="1", patternCodeableConcept=REFERRAL_CATEGORY),
        el("ServiceRequest.priority", "紧急程度", "Priority", min=1, ms=True),
        el("ServiceRequest.subject", "患者", "Patient", type=reference("cn-patient"), ms=True, maps=_wst("患者基本信息")),
        el("ServiceRequest.occurrence[x]", "期望就诊时间", "Requested time", ms=True),
        el("ServiceRequest.authoredOn", "申请时间", "Authored on", min=1, ms=True, maps=_wst("转诊日期")),
        el(
            "ServiceRequest.requester",
            "转出医生",
            "Referring practitioner role",
            min=1,
            type=reference("cn-practitioner-role"),
            ms=True,
            maps=_wst("转出医师及转出医疗机构"),
        ),
        el(
            "ServiceRequest.performer",
            "接收方",
            "Receiving organisation, service or practitioner role",
            min=1,
            type=reference("cn-organization", "HealthcareService", "cn-practitioner-role"),
            ms=True,
            maps=_wst("转入医疗机构及科室"),
        ),
        el(
            "ServiceRequest.reasonCode",
            "转诊诊断",
            "Referral diagnosis",
            min=1,
            ms=True,
            binding=binding("extensible", vs_url("referral-reason")),
            maps=_wst("初步诊断"),
        ),
        el("ServiceRequest.insurance", "医保", "Insurance", type=reference("cn-coverage"), ms=True),
        el(
            "ServiceRequest.supportingInfo",
            "共享病历资料",
            "Shared records",
            type=reference(
                "DocumentReference", "DiagnosticReport", "Observation", "Condition", "Procedure", "MedicationStatement", "Composition", "ImagingStudy"
            ),
            ms=True,
            maps=_wst("主要检查检验结果与治疗经过"),
        ),
        el("ServiceRequest.note", "病情摘要与转诊建议", "Summary and advice", ms=True, maps=_wst("转诊原因、病情摘要与诊疗建议")),
    ],
    mapping=[WST_483_20],
)

REFERRAL_TASK = structure_definition(
    "referral-task",
    "Task",
    "Referral task 转诊任务",
    "转诊处理任务：接收方的受理、预约与回复 / The receiving side's handling of a referral.",
    [
        el(
            "Task",
            "转诊任务",
            "Referral task",
            constraint=[
                constraint(
                    "rtk-1",
                    "拒绝转诊须说明原因",
                    "A rejected referral gives a reason",
                    "(status = 'rejected' or businessStatus.coding.where(code = 'rejected').exists()) implies statusReason.exists()",
                )
            ],
        ),
        _extension_slicing("Task"),
        _ext("Task", "consortium", "referral-consortium", "所属医联体", "Consortium"),
        el("Task.status", "任务状态", "Task status", ms=True, binding=binding("required", vs_url("referral-task-status"))),
        el("Task.statusReason", "状态原因", "Status reason (required on rejection)", ms=True),
        el(
            "Task.businessStatus",
            "业务状态",
            "Business status",
            min=1,
            ms=True,
            binding=binding("required", vs_url("referral-business-status")),
        ),
        el("Task.intent", "意图", "Intent", fixedCode="order", ms=True),
        el("Task.code", "任务类型", "Task code", min=1, patternCodeableConcept=TASK_FULFILL, ms=True),
        el("Task.focus", "转诊申请", "The referral", min=1, type=reference("referral-request"), ms=True),
        el("Task.for", "患者", "Patient", min=1, type=reference("cn-patient"), ms=True),
        el("Task.authoredOn", "创建时间", "Authored on", min=1, ms=True),
        el("Task.requester", "转出方", "Referrer", min=1, type=reference("cn-practitioner-role", "cn-organization"), ms=True),
        el("Task.owner", "接收机构", "Receiving organisation", min=1, type=reference("cn-organization"), ms=True),
        el("Task.restriction", "响应时限", "Response deadline", min=1, ms=True),
        el("Task.restriction.period", "时限", "Deadline period", min=1),
        el("Task.restriction.period.end", "最迟响应时间", "Respond by", min=1),
    ],
)

REFERRAL_ENCOUNTER = structure_definition(
    "referral-encounter",
    "Encounter",
    "Referral encounter 转诊就诊",
    "因转诊发生的门诊或住院就诊 / The visit or stay a referral leads to.",
    [
        el("Encounter", "转诊就诊", "Referral encounter"),
        _extension_slicing("Encounter"),
        _ext("Encounter", "deductible", "deductible-continuation", "起付线连续计算", "Deductible continuation"),
        el("Encounter.status", "状态", "Status", ms=True),
        el("Encounter.subject", "患者", "Patient", min=1, type=reference("cn-patient"), ms=True),
        el("Encounter.episodeOfCare", "疾病过程", "Episode of care (same disease episode)", ms=True),
        el("Encounter.basedOn", "转诊申请", "The referral", min=1, type=reference("referral-request"), ms=True),
        el("Encounter.period", "就诊时间", "Period", ms=True),
        el("Encounter.hospitalization", "住院信息", "Hospitalisation", ms=True),
        el("Encounter.hospitalization.origin", "转出机构", "Referring institution", min=1, type=reference("cn-organization"), ms=True),
        el(
            "Encounter.hospitalization.admitSource",
            "入院途径",
            "Admission route",
            ms=True,
            binding=binding("extensible", vs_url("admission-route")),
        ),
        el(
            "Encounter.hospitalization.dischargeDisposition",
            "离院方式",
            "Discharge disposition",
            ms=True,
            binding=binding("extensible", vs_url("discharge-disposition")),
        ),
        el("Encounter.serviceProvider", "接诊机构", "Receiving institution", min=1, type=reference("cn-organization"), ms=True),
    ],
)

LONG_PRESCRIPTION_CARE_PLAN = structure_definition(
    "long-prescription-care-plan",
    "CarePlan",
    "Long prescription plan 长期处方计划",
    "慢性病长期处方计划：家庭医生团队、适用慢性病与有效期 / A long-prescription plan for a chronic condition.",
    [
        el(
            "CarePlan",
            "长期处方计划",
            "Long prescription plan",
            constraint=[constraint("lpc-1", "有效期结束不早于开始", "The validity period ends after it starts", "period.end >= period.start")],
        ),
        el("CarePlan.status", "状态", "Status", ms=True),
        el("CarePlan.intent", "意图", "Intent", fixedCode="plan", ms=True),
        el("CarePlan.category", "类别", "Category", min=1, slicing=slicing("pattern", "$this"), ms=True),
        el(
            "CarePlan.category:longPrescription",
            "长期处方",
            "Long prescription",
            min=1,
            max="1",
            patternCodeableConcept={"coding": [{"system": system("care-plan-category"), "code": "long-prescription"}]},
        ),
        el("CarePlan.subject", "患者", "Patient", type=reference("cn-patient"), ms=True),
        el("CarePlan.period", "有效期", "Validity period", min=1, ms=True),
        el("CarePlan.period.start", "开始", "Start", min=1),
        el("CarePlan.period.end", "结束", "End", min=1),
        el("CarePlan.author", "开具医生", "Prescriber", type=reference("cn-practitioner-role"), ms=True),
        el("CarePlan.careTeam", "家庭医生团队", "Family-doctor team", min=1, ms=True),
        el("CarePlan.addresses", "慢性病", "Chronic condition", min=1, ms=True),
        el("CarePlan.activity", "处方", "Prescriptions", min=1, ms=True),
        el(
            "CarePlan.activity.reference",
            "长期处方医嘱",
            "Long-prescription medication request",
            min=1,
            type=reference("long-prescription-medication-request"),
        ),
    ],
)

LONG_PRESCRIPTION_MEDICATION_REQUEST = structure_definition(
    "long-prescription-medication-request",
    "MedicationRequest",
    "Long prescription 长期处方",
    "长期处方医嘱：单次最长12周（地区规则可更严）/ A long prescription: at most 12 weeks' supply nationally;"
    " regional rule sets may narrow it.",
    [
        el(
            "MedicationRequest",
            "长期处方",
            "Long prescription",
            constraint=[
                constraint(
                    "lpm-1",
                    "单次处方用量不超过12周",
                    "Expected supply is at most 12 weeks",
                    "dispenseRequest.expectedSupplyDuration.all(system = 'http://unitsofmeasure.org'"
                    " and ((code = 'd' and value <= 84) or (code = 'wk' and value <= 12)))",
                )
            ],
        ),
        el("MedicationRequest.status", "状态", "Status", ms=True),
        el("MedicationRequest.intent", "意图", "Intent", fixedCode="order", ms=True),
        el("MedicationRequest.medication[x]", "药品", "Medication", ms=True),
        el("MedicationRequest.subject", "患者", "Patient", type=reference("cn-patient"), ms=True),
        el("MedicationRequest.authoredOn", "开具时间", "Authored on", min=1, ms=True),
        el("MedicationRequest.requester", "开具医生", "Prescriber", min=1, type=reference("cn-practitioner-role"), ms=True),
        el(
            "MedicationRequest.reasonCode",
            "慢性病诊断",
            "Chronic condition",
            min=1,
            ms=True,
            binding=binding("extensible", vs_url("chronic-conditions")),
        ),
        el("MedicationRequest.basedOn", "长期处方计划", "Long prescription plan", min=1, type=reference("long-prescription-care-plan"), ms=True),
        el(
            "MedicationRequest.courseOfTherapyType",
            "疗程类型",
            "Course of therapy",
            min=1,
            patternCodeableConcept={
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy", "code": "continuous"}]
            },
        ),
        el("MedicationRequest.dispenseRequest", "配药", "Dispense request", min=1, ms=True),
        el("MedicationRequest.dispenseRequest.validityPeriod", "处方有效期", "Validity period", min=1, ms=True),
        el("MedicationRequest.dispenseRequest.expectedSupplyDuration", "用药天数", "Expected supply duration", min=1, ms=True),
    ],
)

CN_COVERAGE = structure_definition(
    "cn-coverage",
    "Coverage",
    "Basic medical insurance coverage 基本医疗保险",
    "参保信息：险种、参保地、医保编号与异地就医备案 / Basic medical insurance: type, insured region, number, off-site filing.",
    [
        el("Coverage", "基本医疗保险", "Basic medical insurance"),
        _extension_slicing("Coverage"),
        _ext("Coverage", "insuredRegion", "insured-region", "参保地", "Insured region", 1),
        _ext("Coverage", "offsiteFiling", "offsite-care-filing", "异地就医备案", "Off-site care filing"),
        el("Coverage.status", "状态", "Status", ms=True),
        el("Coverage.type", "险种类型", "Insurance type", min=1, ms=True, binding=binding("required", vs_url("insurance-type"))),
        el("Coverage.subscriberId", "医保编号", "Insurance number", min=1, ms=True),
        el("Coverage.beneficiary", "参保人", "Insured patient", type=reference("cn-patient"), ms=True),
        el("Coverage.period", "参保期间", "Period", ms=True),
        el("Coverage.payor", "医保经办机构", "Insurance agency", ms=True),
    ],
)

CN_PATIENT = structure_definition(
    "cn-patient",
    "Patient",
    "Patient 患者",
    "患者：居民身份证、医保卡与居民健康卡标识 / Patient identified by national ID, insurance card and health card.",
    [
        el(
            "Patient",
            "患者",
            "Patient",
            constraint=[
                constraint(
                    "pat-1",
                    "居民身份证号为18位",
                    "A national ID number has 18 characters: 17 digits and a check digit",
                    f"identifier.where(system = '{NATIONAL_ID_SYSTEM}').all(value.matches('^[0-9]{{17}}[0-9X]$'))",
                )
            ],
        ),
        el("Patient.identifier", "标识", "Identifiers", min=1, ms=True, slicing=slicing("value", "system")),
        *_identifier_slice("Patient", "nationalId", NATIONAL_ID_SYSTEM, "居民身份证", "National ID"),
        *_identifier_slice("Patient", "insuranceCard", INSURANCE_CARD_SYSTEM, "医保卡号", "Insurance card"),
        *_identifier_slice("Patient", "healthCard", HEALTH_CARD_SYSTEM, "居民健康卡号", "Health card"),
        el("Patient.name", "姓名", "Name", min=1, ms=True),
        el("Patient.telecom", "联系方式", "Telecom", ms=True),
        el("Patient.gender", "性别", "Gender", min=1, ms=True),
        el("Patient.birthDate", "出生日期", "Birth date", ms=True),
        el("Patient.address", "住址", "Address", ms=True),
    ],
)

CN_ORGANIZATION = structure_definition(
    "cn-organization",
    "Organization",
    "Medical institution 医疗机构",
    "医疗机构或医联体：级别等次、机构类别、统一社会信用代码与执业许可证登记号 / A medical institution or consortium.",
    [
        el(
            "Organization",
            "医疗机构",
            "Medical institution",
            constraint=[
                constraint(
                    "org-1",
                    "须有统一社会信用代码或医疗机构执业许可证登记号",
                    "Has a unified social credit code or a medical institution licence number",
                    f"identifier.where(system = '{USCI_SYSTEM}' or system = '{LICENCE_SYSTEM}').exists()",
                ),
                constraint(
                    "org-2",
                    "统一社会信用代码为18位",
                    "A unified social credit code has 18 characters",
                    f"identifier.where(system = '{USCI_SYSTEM}').all(value.matches('^[0-9A-HJ-NPQRTUWXY]{{2}}[0-9]{{6}}[0-9A-HJ-NPQRTUWXY]{{10}}$'))",
                ),
            ],
        ),
        _extension_slicing("Organization"),
        _ext("Organization", "facilityLevel", "facility-level", "级别等次", "Level and grade"),
        el("Organization.identifier", "标识", "Identifiers", min=1, ms=True, slicing=slicing("value", "system")),
        *_identifier_slice("Organization", "usci", USCI_SYSTEM, "统一社会信用代码", "Unified social credit code"),
        *_identifier_slice("Organization", "licence", LICENCE_SYSTEM, "医疗机构执业许可证登记号", "Institution licence number"),
        el("Organization.active", "有效", "Active", ms=True),
        el("Organization.type", "类别", "Type", min=1, ms=True, slicing=slicing("pattern", "$this")),
        el(
            "Organization.type:institutionType",
            "机构类别",
            "Institution type",
            min=0,
            max="1",
            patternCodeableConcept={"coding": [{"system": system("institution-type")}]},
            binding=binding("required", vs_url("institution-type")),
        ),
        el(
            "Organization.type:consortiumType",
            "医联体类型",
            "Consortium type",
            min=0,
            max="1",
            patternCodeableConcept={"coding": [{"system": system("consortium-type")}]},
            binding=binding("required", vs_url("consortium-type")),
        ),
        el("Organization.name", "名称", "Name", min=1, ms=True),
        el("Organization.address", "地址", "Address", ms=True),
        el("Organization.partOf", "上级机构", "Part of", type=reference("cn-organization"), ms=True),
    ],
)

CONSORTIUM_MEMBERSHIP = structure_definition(
    "consortium-membership",
    "OrganizationAffiliation",
    "Consortium membership 医联体成员关系",
    "医联体成员关系：牵头医院与成员单位（一个成员只属于一个医联体）/ Membership of an institution in a consortium.",
    [
        el("OrganizationAffiliation", "医联体成员关系", "Consortium membership"),
        el("OrganizationAffiliation.active", "有效", "Active", min=1, ms=True),
        el("OrganizationAffiliation.period", "期间", "Period", ms=True),
        el("OrganizationAffiliation.organization", "牵头医院", "Lead hospital", min=1, type=reference("cn-organization"), ms=True),
        el(
            "OrganizationAffiliation.participatingOrganization",
            "成员单位",
            "Member institution",
            min=1,
            type=reference("cn-organization"),
            ms=True,
        ),
        el("OrganizationAffiliation.network", "医联体", "The consortium", min=1, max="1", type=reference("cn-organization"), ms=True),
        el("OrganizationAffiliation.code", "角色", "Role", min=1, ms=True, slicing=slicing("pattern", "$this")),
        el(
            "OrganizationAffiliation.code:role",
            "医联体角色",
            "Consortium role",
            min=1,
            max="1",
            patternCodeableConcept={"coding": [{"system": system("consortium-role")}]},
            binding=binding("required", vs_url("consortium-role")),
        ),
    ],
)

CN_PRACTITIONER = structure_definition(
    "cn-practitioner",
    "Practitioner",
    "Practitioner 医务人员",
    "医务人员：医师执业证书编码与身份证 / A practitioner identified by licence and national ID.",
    [
        el("Practitioner", "医务人员", "Practitioner"),
        el("Practitioner.identifier", "标识", "Identifiers", min=1, ms=True, slicing=slicing("value", "system")),
        *_identifier_slice("Practitioner", "licence", PHYSICIAN_LICENCE_SYSTEM, "医师执业证书编码", "Physician licence"),
        *_identifier_slice("Practitioner", "nationalId", NATIONAL_ID_SYSTEM, "居民身份证", "National ID"),
        el("Practitioner.name", "姓名", "Name", min=1, ms=True),
        el("Practitioner.gender", "性别", "Gender", ms=True),
        el("Practitioner.qualification", "资格", "Qualification", ms=True),
    ],
)

CN_PRACTITIONER_ROLE = structure_definition(
    "cn-practitioner-role",
    "PractitionerRole",
    "Practitioner role 执业角色",
    "医务人员在机构中的角色与专业技术职务（副主任医师及以上可作跨省评估）/ A practitioner's role and professional title.",
    [
        el("PractitionerRole", "执业角色", "Practitioner role"),
        el("PractitionerRole.active", "有效", "Active", ms=True),
        el("PractitionerRole.practitioner", "医务人员", "Practitioner", min=1, type=reference("cn-practitioner"), ms=True),
        el("PractitionerRole.organization", "执业机构", "Organisation", min=1, type=reference("cn-organization"), ms=True),
        el("PractitionerRole.code", "角色", "Role", ms=True, slicing=slicing("pattern", "$this")),
        el(
            "PractitionerRole.code:professionalTitle",
            "专业技术职务",
            "Professional title",
            max="1",
            patternCodeableConcept={"coding": [{"system": system("professional-title")}]},
            binding=binding("required", vs_url("professional-title")),
        ),
        el("PractitionerRole.specialty", "科室专业", "Specialty", ms=True),
    ],
)

REFERRAL_CONSENT = structure_definition(
    "referral-consent",
    "Consent",
    "Referral consent 转诊知情同意",
    "患者（或其代理人）对转诊的知情同意 / The patient's (or proxy's) informed consent to a referral.",
    [
        el("Consent", "转诊知情同意", "Referral consent"),
        el("Consent.status", "状态", "Status", ms=True),
        el(
            "Consent.scope",
            "范围",
            "Scope",
            patternCodeableConcept={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}]},
        ),
        el("Consent.category", "类别", "Category", ms=True, slicing=slicing("pattern", "$this")),
        el(
            "Consent.category:referral",
            "转诊知情同意",
            "Referral consent",
            min=1,
            max="1",
            patternCodeableConcept={"coding": [{"system": system("consent-category"), "code": "referral-consent"}]},
        ),
        el("Consent.patient", "患者", "Patient", min=1, type=reference("cn-patient"), ms=True),
        el("Consent.dateTime", "签署时间", "Signed at", min=1, ms=True),
        el("Consent.performer", "签署人", "Signed by", min=1, type=reference("cn-patient", "RelatedPerson"), ms=True),
        el("Consent.organization", "机构", "Organisation", min=1, type=reference("cn-organization"), ms=True),
        el("Consent.source[x]", "知情同意书", "Signed form", ms=True),
    ],
)

PROFILES: list[dict] = [
    REFERRAL_REQUEST,
    REFERRAL_TASK,
    REFERRAL_ENCOUNTER,
    LONG_PRESCRIPTION_CARE_PLAN,
    LONG_PRESCRIPTION_MEDICATION_REQUEST,
    CN_COVERAGE,
    CN_PATIENT,
    CN_ORGANIZATION,
    CONSORTIUM_MEMBERSHIP,
    CN_PRACTITIONER,
    CN_PRACTITIONER_ROLE,
    REFERRAL_CONSENT,
]
