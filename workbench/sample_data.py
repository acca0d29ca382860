"""Deterministic synthetic IT helpdesk tickets: the project's own bundled sample data.

Why this exists: the real ticket export may never be copied into the repository, yet
notebooks, tests and demos need a small data set that *looks* like it: lower-cased,
stop-words and punctuation removed, subject line followed by a flattened e-mail thread,
eight imbalanced categories, a long tail of very long threads, overlapping vocabulary
between categories, some label noise and duplicates.  Everything below (templates and
vocabulary) is hand-written; only the style and the class shares follow the real data.

Regenerate the committed file with::

    python -m workbench.sample_data --out data/sample/tickets.csv --n 1000 --seed 0
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

__all__ = ["CATEGORIES", "CLASS_SHARES", "generate_tickets", "write_sample", "main"]

CATEGORIES: tuple[str, ...] = (
    "Access",
    "Administrative rights",
    "Hardware",
    "HR Support",
    "Internal Project",
    "Miscellaneous",
    "Purchase",
    "Storage",
)

# Class shares of the real data; the sample keeps its imbalance.
CLASS_SHARES: dict[str, float] = {
    "Hardware": 0.285,
    "HR Support": 0.228,
    "Access": 0.149,
    "Miscellaneous": 0.148,
    "Storage": 0.058,
    "Purchase": 0.052,
    "Internal Project": 0.044,
    "Administrative rights": 0.037,
}

DEFAULT_PATH = Path("data/sample/tickets.csv")

# --------------------------------------------------------------------------------------
# Text processing (imitates the real export's cleaning)
# --------------------------------------------------------------------------------------

_STOP_WORDS_TEXT = """
    a an the to and is are was were be been being am i me my mine myself we our ours us
    it its itself this that these those of in on at into onto about as by from so then
    than there here do does did doing just own same which who whom what when where why
    how all both each few such only very s t don should now will shall yours yourself
    she her hers him his they them their theirs off out up down over under again further
    once most some nor no too between through during before after above below while
"""
_STOP_WORDS: frozenset[str] = frozenset(_STOP_WORDS_TEXT.split())
_NON_LETTERS = re.compile(r"[^a-z\s]+")
_SLOT = re.compile(r"\{(\w+)\}")


def _strip(text: str) -> str:
    """Lower-case and drop digits/punctuation (subject lines keep their stop-words)."""
    return " ".join(_NON_LETTERS.sub(" ", text.lower()).split())


def _clean(text: str) -> str:
    """Lower-case, drop digits/punctuation and stop-words, as the real export's bodies."""
    return " ".join(w for w in _strip(text).split() if w not in _STOP_WORDS)


# --------------------------------------------------------------------------------------
# Shared vocabulary (used by every category)
# --------------------------------------------------------------------------------------

# fmt: off

_SHARED_SLOTS: dict[str, tuple[str, ...]] = {
    "weekday": ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    "month": (
        "january", "february", "march", "april", "may", "june", "july", "august",
        "september", "october", "november", "december",
    ),
    "role": (
        "engineer", "manager", "administrator", "officer", "software engineer",
        "senior software engineer", "project manager", "office administrator",
        "finance officer", "hr specialist", "service desk analyst", "team lead",
        "operations coordinator", "quality assurance engineer", "business analyst",
        "payroll officer", "procurement specialist", "account manager", "developer",
        "senior developer", "technical lead", "delivery manager", "executive assistant",
        "facilities coordinator", "sales manager", "data analyst", "marketing specialist",
        "legal counsel", "recruitment officer", "support engineer", "network engineer",
        "system administrator", "test engineer", "product owner", "scrum master",
        "office manager", "travel coordinator", "compliance officer", "it technician",
        "head of department", "line manager", "consultant", "architect", "designer",
    ),
    "team": (
        "finance", "marketing", "sales", "engineering", "legal", "operations",
        "procurement", "facilities", "quality", "support", "research", "design",
        "payroll", "recruitment", "logistics", "customer success", "infrastructure",
        "data", "security", "training", "communications", "audit",
    ),
    "office": (
        "head office", "regional office", "east campus", "west wing", "main building",
        "north site", "south site", "annex building", "branch office", "city office",
        "innovation hub", "warehouse office", "remote office",
    ),
}

_GREETINGS: tuple[str, ...] = (
    "hi", "hello", "dear", "hi team", "hello team", "dear colleagues", "dear support",
    "hi there", "good morning", "good afternoon", "dears", "hello all", "hi all",
    "dear service desk", "hello colleagues", "hey", "dear team", "hi support",
)

_SIGNOFFS: tuple[str, ...] = (
    "thank", "thanks", "thank you", "kind regards", "best regards", "regards",
    "many thanks", "thanks in advance", "thank you very much", "much appreciated",
    "thanks and regards", "thank you kind regards", "best wishes", "cheers",
    "thank you for your help", "with kind regards", "warm regards", "thanks a lot",
)

_FILLERS: tuple[str, ...] = (
    "please let me know if you need any further information",
    "could you please look into this as soon as possible",
    "this is quite urgent for me",
    "please advise",
    "thank you for your help with this",
    "any update on this",
    "sorry for the inconvenience",
    "i have attached a screenshot",
    "please see the details below",
    "as discussed on the phone earlier today",
    "following up on my previous email",
    "can you please assist",
    "it was working fine yesterday",
    "i am not sure who to contact about this",
    "this is blocking my work",
    "i tried again this morning with the same result",
    "my colleague has the same problem",
    "please escalate if needed",
    "let me know if you need anything else from me",
    "i am working from home today",
    "please call me on my mobile when you can",
    "the ticket was closed but the problem is still there",
    "please reopen the ticket",
    "forwarding this request on behalf of my manager",
    "we have a deadline at the end of the week",
    "please treat this with high priority",
    "i will be out of the office from tomorrow",
    "can someone from your team contact me",
    "please confirm once this is done",
    "i raised this last week but did not get any answer",
    "not sure if this is the right queue",
    "please assign this to the right team",
    "we need this before the client meeting",
    "i can be reached on teams all day",
    "see the request below",
    "adding my manager in copy",
    "apologies if this was already reported",
    "the issue started after the weekend",
    "please help",
    "waiting for your feedback",
)

_SIGNATURES: tuple[str, ...] = (
    "{role} ext mobile",
    "{role} {team} department {office}",
    "{team} team {office} ground floor",
    "{role} office phone mobile",
    "{office} floor room",
    "{role} {team}",
    "mobile information confidential",
    "{role} tel ext fax",
    "sent from my phone",
    "{office} street floor reception",
)

_DISCLAIMERS: tuple[str, ...] = (
    "this message and any attachment are confidential and intended only for the named "
    "addressee if you received it by mistake please notify the sender and delete it",
    "the information in this email is private and may be legally privileged any use "
    "copying or distribution by anyone other than the recipient is not allowed",
    "please consider the environment before printing this email",
    "this email was scanned for viruses but we accept no liability for any damage caused",
    "external email be careful with links and attachments from unknown senders",
)

_HEADER_EXTRAS: tuple[str, ...] = (
    "importance high", "sent", "pm", "ref msg", "fw", "fwd", "cc", "importance low",
    "sent pm",
)

# Generic subjects/bodies carrying no category cue; used for the "vague" tickets.
_VAGUE_SUBJECTS: tuple[str, ...] = (
    "request", "issue", "urgent", "help needed", "problem", "question", "follow up",
    "pending request", "ticket update", "quick question", "need help", "support request",
    "please check", "reminder", "not working", "request for support", "escalation",
    "urgent request", "information needed", "open ticket",
)
_VAGUE_BODIES: tuple[str, ...] = (
    "i have a problem please help",
    "please check the attached and let me know",
    "same issue as last time",
    "can you please call me about this",
    "it does not work again",
    "please see attached screenshot",
    "still waiting for this one",
    "who can help with this",
    "please handle this request",
    "this needs to be fixed today",
    "could you please check what happened",
    "i need this for tomorrow",
)

# --------------------------------------------------------------------------------------
# Category vocabulary: subjects, body sentences and slot words, all hand-written.
# --------------------------------------------------------------------------------------

_VOCAB: dict[str, dict[str, object]] = {
    "Hardware": {
        "slots": {
            "device": (
                "laptop", "desktop", "monitor", "second monitor", "docking station",
                "keyboard", "mouse", "wireless mouse", "headset", "webcam", "printer",
                "scanner", "projector", "desk phone", "mobile phone", "tablet", "charger",
                "power adapter", "usb hub", "external screen", "thin client", "workstation",
                "conference camera", "speakerphone", "label printer", "barcode scanner",
                "card reader", "hdmi cable", "display adapter", "ups unit", "wifi router",
                "network switch", "access point", "usb headset", "laptop stand",
            ),
            "symptom": (
                "not turning on", "keeps restarting", "very slow", "overheating",
                "making a strange noise", "flickering", "not detected", "stopped working",
                "freezing", "showing a blue screen", "losing battery fast", "cracked",
                "has stuck keys", "not charging", "showing no signal",
                "randomly disconnecting", "dropping the connection", "without sound",
                "jamming paper", "printing blank pages", "very loud", "missing a driver",
                "black after login", "shutting down by itself", "blinking orange",
                "not responding", "crackling", "dead",
            ),
            "part": (
                "battery", "screen", "hinge", "fan", "keyboard", "power button",
                "touchpad", "speaker", "microphone", "network port", "usb port",
                "power cable", "toner", "drum unit", "paper tray", "charging port",
                "display panel", "memory module", "ethernet cable", "trackpad",
            ),
            "location": (
                "meeting room", "reception", "training room", "open space", "boardroom",
                "second floor", "warehouse", "lab", "kitchen area", "third floor",
                "conference room", "front desk", "quiet room",
            ),
        },
        "subjects": (
            "{device} {symptom}",
            "problem with {device}",
            "{device} not working",
            "broken {part} on laptop",
            "replace {part}",
            "{device} issue",
            "wifi not working in {location}",
            "printer in {location} {symptom}",
            "network connection issue",
            "cannot connect to the network",
            "laptop repair request",
            "{device} replacement",
            "issue with {part}",
            "blue screen on my laptop",
            "internet very slow",
            "no network in {location}",
            "headset {symptom}",
            "projector in {location} not working",
            "toner replacement for printer",
            "docking station does not detect monitors",
            "computer very slow",
            "sound not working",
            "hardware fault",
            "phone {symptom}",
            "pc will not boot",
            "screen flickering",
            "laptop overheating",
            "keyboard keys not working",
            "monitor setup for new desk",
            "video call camera not working",
            "printer offline",
            "cannot print",
            "laptop battery swollen",
            "wifi keeps dropping",
            "equipment check",
            "desk setup request",
            "mouse and keyboard not responding",
            "spilled coffee on laptop",
            "room equipment broken",
            "network cable needed",
            "cannot connect external monitor",
            "no audio in meetings",
            "fan noise laptop",
            "touchpad not working",
            "{device} in {location} {symptom}",
            "outlook freezing on laptop",
            "laptop very slow after update",
            "printer driver missing",
        ),
        "bodies": (
            "my {device} is {symptom} since this morning",
            "the {part} of my laptop is broken and needs to be replaced",
            "the {device} in the {location} is {symptom}",
            "i cannot connect to the wifi in the {location}",
            "the laptop shows a blue screen every time i open the lid",
            "could you please send a technician to check the {device}",
            "the {device} was working yesterday but today it is {symptom}",
            "i already restarted the laptop and reseated the cables",
            "the docking station does not detect my second monitor",
            "the printer on the {location} keeps jamming",
            "we need a new {part} for the printer",
            "the battery only lasts about an hour now",
            "the screen is flickering when i move the laptop",
            "my headset microphone is not picked up in calls",
            "the network cable at my desk seems to be damaged",
            "the laptop fan is extremely loud and the case is hot",
            "can you replace the {part} on my {device}",
            "the projector in the {location} shows no signal from the hdmi cable",
            "the keyboard is missing a few keys",
            "my computer takes more than ten minutes to start",
            "the laptop freezes when i connect it to the docking station",
            "the internet connection is very slow on the {location}",
            "the desk phone has no dial tone",
            "i dropped my laptop and now the screen is cracked",
            "the {device} does not turn on even when plugged in",
            "the charger stopped working and the laptop is almost empty",
            "the webcam shows a black image in video calls",
            "please check the access point on the {location} it keeps disconnecting",
            "the print queue is stuck and nothing comes out",
            "the device manager shows an unknown device after the update",
            "the {device} makes a clicking noise and then shuts down",
            "the usb ports on the docking station do not work",
            "could you bring a spare {device} until mine is repaired",
            "the external monitor keeps going to sleep",
            "my laptop is not charging through the usb c port",
            "the scanner does not send documents to my email anymore",
            "the laptop hinge broke and the screen is loose",
            "please collect the old {device} from my desk",
            "the meeting room screen does not wake up",
            "the wireless mouse lags and the cursor jumps",
            "the workstation restarts during heavy calculations",
            "the sound card driver seems to be missing",
            "the label printer prints only half of the label",
            "the laptop does not wake up from sleep",
            "the phone screen does not respond to touch",
            "i need a replacement {device} because mine is {symptom}",
        ),
    },
    "HR Support": {
        "slots": {
            "leave": (
                "sick leave", "annual leave", "holiday", "parental leave", "maternity leave",
                "unpaid leave", "compassionate leave", "study leave", "remote work day",
                "time off", "vacation", "paternity leave", "overtime",
            ),
            "hrdoc": (
                "employment certificate", "payslip", "contract", "salary statement",
                "reference letter", "tax form", "starter form", "leaver form",
                "probation review", "benefits form", "bank details form", "job description",
                "confirmation of employment", "pension statement", "health insurance card",
            ),
            "hrsys": (
                "hr portal", "time card application", "timesheet system", "absence tool",
                "payroll system", "self service portal", "learning platform",
                "performance review tool", "recruitment system", "employee app",
            ),
        },
        "subjects": (
            "{leave} request",
            "cannot enter {leave}",
            "new starter form",
            "new joiner next monday",
            "leaver form for employee",
            "request for {hrdoc}",
            "{hrdoc} needed",
            "problem with {hrsys}",
            "time card not submitted",
            "cannot submit time card",
            "timesheet approval missing",
            "payslip not received",
            "wrong salary this month",
            "update bank details",
            "induction materials",
            "onboarding new employee",
            "absence not visible",
            "holiday balance incorrect",
            "change of address",
            "employee data update",
            "probation period end",
            "performance review form",
            "training enrolment",
            "benefits enrolment question",
            "overtime approval",
            "sick note upload",
            "{hrsys} error",
            "access card for new starter",
            "employee leaving the company",
            "contract extension",
            "maternity leave return",
            "working hours change",
            "manager change in {hrsys}",
            "expense reimbursement question",
            "pension scheme question",
            "internal transfer",
            "exit interview",
            "approver missing for time off",
            "{leave} balance",
            "medical certificate submission",
            "new hire equipment and accounts",
        ),
        "bodies": (
            "i tried to enter my {leave} in the {hrsys} but it shows an error",
            "please find attached the starter form for our new colleague",
            "our new joiner starts on monday and needs the usual onboarding",
            "could you please send me my {hrdoc}",
            "my time card for last week cannot be submitted",
            "the submit button is missing on the time card page",
            "my {leave} balance looks wrong after the last update",
            "i did not receive my payslip this month",
            "please update my bank details for the salary payment",
            "the employee will leave the company at the end of the month",
            "please process the leaver form attached",
            "my manager is not set as approver in the {hrsys}",
            "i need a {hrdoc} for the embassy",
            "the absence i entered last week is not visible anymore",
            "could you change my working hours from full time to part time",
            "please register me for the mandatory training",
            "the {hrsys} says my contract has ended which is not correct",
            "i would like to know how many holiday days i have left",
            "the overtime hours were not paid",
            "please extend the contract of the intern for three more months",
            "my address changed please update my employee record",
            "the probation review form needs to be signed by my manager",
            "i returned from {leave} and cannot log my hours",
            "can you please confirm the public holidays for next year",
            "the induction plan for the new employee is missing",
            "the new starter needs an access card and a welcome pack",
            "i uploaded the medical certificate but it was rejected",
            "please correct my start date in the {hrsys}",
            "the time entries were rejected without any comment",
            "my {leave} request is pending for two weeks",
            "please assign the new team member to my team in the {hrsys}",
            "the salary increase is not reflected in my payslip",
            "i need help filling the {hrdoc}",
            "the employee changed department and needs a new manager in the system",
            "the recruitment candidate accepted the offer please prepare the contract",
            "the performance review cycle is open but i cannot see my goals",
            "please send the benefits information to the new employee",
            "the exit interview for the leaver should be scheduled this week",
            "i was charged {leave} days twice",
        ),
    },
    "Access": {
        "slots": {
            "tool": (
                "vpn", "wiki", "code repository", "ticketing tool", "crm", "erp",
                "reporting dashboard", "build server", "test environment", "intranet",
                "project tracker", "team site", "chat workspace", "customer portal",
                "remote desktop", "email account", "distribution list", "file portal",
                "analytics workspace", "design tool", "knowledge base", "jenkins server",
                "git group", "cloud console", "database", "time tracking tool",
            ),
            "accessverb": (
                "access to", "permission for", "account for", "login to", "rights on",
                "read access to", "write access to", "membership of",
            ),
        },
        "subjects": (
            "{accessverb} {tool}",
            "request {accessverb} {tool}",
            "access request",
            "password reset",
            "password expired",
            "account locked",
            "cannot log in to {tool}",
            "login issue",
            "access to {tool} for new starter",
            "remove access for leaver",
            "add user to {tool}",
            "add me to distribution list",
            "vpn access request",
            "two factor authentication not working",
            "reset multi factor authentication",
            "account disabled",
            "user account creation",
            "new account for contractor",
            "permission denied on {tool}",
            "access rights update",
            "grant access to repository",
            "cannot sign in",
            "forgot password",
            "password change",
            "security group membership",
            "access to shared mailbox",
            "access revoked by mistake",
            "unlock account",
            "guest access for external partner",
            "single sign on error",
            "token expired",
            "access for {team} team",
            "{tool} access denied",
            "mailbox permissions",
            "extend account expiry date",
        ),
        "bodies": (
            "could you please give me {accessverb} the {tool}",
            "i need access to the {tool} for my new project",
            "my account is locked after too many attempts",
            "my password expired and i cannot change it from home",
            "please reset my password",
            "i get access denied when opening the {tool}",
            "please add me to the {team} distribution list",
            "the new colleague needs an account for the {tool}",
            "please remove the access of the employee who left",
            "the authenticator app does not accept my code",
            "i changed my phone and lost the second factor",
            "i can log in but i only see an empty page in the {tool}",
            "please give read access to the {tool} to the whole team",
            "the contractor account expires tomorrow please extend it",
            "i need write access to the repository to push my changes",
            "the login page keeps redirecting me back",
            "my user was disabled by mistake",
            "please create accounts for the three new interns",
            "i need the same permissions as my colleague in the {tool}",
            "the vpn rejects my credentials",
            "could you add the external partner as a guest user",
            "please grant me access to the shared mailbox of the {team} team",
            "i cannot see the project in the {tool} although i am a member",
            "the single sign on fails with an unknown error",
            "please unlock my account",
            "i was removed from the security group and lost my access",
            "how can i change my password when my laptop is off the network",
            "the access request form was approved by my manager",
            "please give me permission to create jobs on the build server",
            "i need admin role in the {tool} to manage the users",
            "i have access to the test environment but not to production",
            "my account name is wrong and i cannot log in",
            "please revoke my old access as i moved to the {team} team",
            "the {tool} asks for a password i never set",
        ),
    },
    "Miscellaneous": {
        "slots": {
            "thing": (
                "report", "newsletter", "email signature", "meeting room booking",
                "travel booking", "supplier record", "invoice", "approval flow",
                "change task", "calendar invite", "survey", "template", "mailing",
                "company event", "office move", "parking permit", "catering order",
                "translation", "website content", "phishing email", "spam message",
                "courier delivery", "visitor badge", "policy document", "presentation",
            ),
        },
        "subjects": (
            "question about {thing}",
            "{thing} request",
            "update {thing}",
            "problem with {thing}",
            "suspicious email received",
            "phishing attempt",
            "spam in inbox",
            "meeting room booking",
            "travel approval pending",
            "change task assigned",
            "periodic report",
            "add supplier",
            "invoice not approved",
            "general question",
            "information request",
            "email signature update",
            "newsletter template",
            "office move next month",
            "reassign approval",
            "visitor registration",
            "parking permit request",
            "survey link not working",
            "website text update",
            "calendar invite issue",
            "delivery for the office",
            "company event registration",
            "reassign owner of report",
            "feedback on service",
            "request for information",
            "catering for workshop",
            "translation of document",
            "notification emails",
            "automatic reply setup",
            "recurring meeting problem",
            "announcement to all staff",
        ),
        "bodies": (
            "could you please update the {thing} with the new details",
            "i received a suspicious email asking for my credentials",
            "please reassign the approval to the new owner",
            "the approval is pending and the trip is next week",
            "please add the new supplier to the list",
            "the {thing} still shows the old information",
            "who is responsible for the {thing}",
            "i got a spam message with a strange link should i delete it",
            "please book the big meeting room for the workshop",
            "the change task was assigned to me but i do not know what to do",
            "please replace the owner of the periodic report",
            "the invoice is waiting for approval for a month",
            "can you set up an automatic reply while i am away",
            "the newsletter template looks broken in some clients",
            "we are moving to the {office} next month",
            "please send the announcement to all employees",
            "the survey link returns an error page",
            "the visitor badge for tomorrow was not prepared",
            "can you forward this to the right department",
            "the recurring meeting disappeared from my calendar",
            "please translate the attached document",
            "i need information about the {thing}",
            "the delivery for the office arrived damaged",
            "please update my title in the email signature",
            "we want to organise a company event next month",
            "the flow for the {thing} is not clear to me",
            "the courier could not find the office",
            "i would like to give feedback about the service",
            "i am getting too many notification emails",
            "the policy document link on the intranet is broken",
            "please check if this message is legitimate",
            "the booking system shows the room as free but it is taken",
            "can you tell me the process for the {thing}",
        ),
    },
    "Storage": {
        "slots": {
            "folder": (
                "shared folder", "team folder", "project folder", "network drive",
                "document library", "archive folder", "department share", "home drive",
                "backup folder", "cloud drive", "common drive", "records folder",
                "template folder", "finance share", "scan folder", "public folder",
            ),
            "quota": (
                "mailbox", "cloud drive", "home drive", "team site", "network drive",
                "archive mailbox", "shared mailbox",
            ),
        },
        "subjects": (
            "cannot access {folder}",
            "access to {folder}",
            "{quota} almost full",
            "your {quota} is full",
            "increase {quota} size",
            "restore deleted files",
            "file recovery request",
            "move folder content",
            "create new {folder}",
            "{folder} not visible",
            "files missing from {folder}",
            "disk space low",
            "storage quota exceeded",
            "mailbox size limit",
            "archive old emails",
            "map network drive",
            "share document with colleague",
            "file sync not working",
            "backup request",
            "restore previous version",
            "folder permissions",
            "cannot save file to {folder}",
            "document library cleanup",
            "large file transfer",
            "archive project data",
            "drive letter missing",
            "permission on library",
            "{folder} read only",
            "request more storage",
            "folder structure change",
        ),
        "bodies": (
            "i cannot access the {folder} since this morning",
            "please give me access to the {folder} of the {team} team",
            "my {quota} is almost full and i cannot send emails",
            "can you please increase the size of my {quota}",
            "i deleted some files by mistake please restore them",
            "please restore the {folder} to the version from last friday",
            "please move the content of the old folder to the new location",
            "the files in the {folder} were deleted by someone",
            "the {folder} is not mapped on my laptop anymore",
            "i get a message that the disk is full",
            "please create a new {folder} for the project with read access for the team",
            "the sync client shows a red cross on all files",
            "i need to share a large file with an external partner",
            "please archive the emails older than two years",
            "the {folder} became read only and i cannot save",
            "we need more storage for the project data",
            "i cannot find the folder i created yesterday",
            "the document library has too many versions please clean up",
            "please give write permission on the library to the new colleague",
            "the mapped drive letter disappeared after the update",
            "the backup of my laptop failed",
            "i want to share the folder with my manager only",
            "the file is locked by another user and i cannot edit it",
            "please move my old emails to the archive mailbox",
            "the shared mailbox is over the size limit",
            "the scan folder is full and scans are not saved",
            "please remove the access of the leaver from the {folder}",
            "the folder permissions are inherited wrongly",
            "i need the files from the {folder} of the employee who left",
            "the previous versions tab is empty",
        ),
    },
    "Purchase": {
        "slots": {
            "item": (
                "laptop", "monitor", "docking station", "headset", "keyboard", "mobile phone",
                "software license", "tablet", "webcam", "chair", "printer", "toner",
                "subscription", "cables", "adapter", "external disk", "server", "memory upgrade",
                "design software", "development license", "phone plan", "sim card",
            ),
            "podoc": (
                "purchase order", "quote", "invoice", "order confirmation", "receipt",
                "purchase request", "delivery note", "price offer", "budget approval",
            ),
        },
        "subjects": (
            "new purchase order",
            "purchase request for {item}",
            "order {item}",
            "{podoc} for {item}",
            "quote needed for {item}",
            "po approval",
            "po receipt",
            "order status",
            "delivery of {item}",
            "buy new {item}",
            "license purchase",
            "renew subscription",
            "invoice for order",
            "order for new starter",
            "purchase approval pending",
            "ordered item not received",
            "request quote",
            "equipment order",
            "bulk order for team",
            "vendor offer",
            "po created please allocate",
            "goods receipt",
            "purchase of {item} for project",
            "procurement request",
            "cancel order",
        ),
        "bodies": (
            "please order a new {item} for our colleague",
            "the {podoc} for the {item} is attached",
            "we purchased the items listed below please confirm receipt",
            "please take into account the mandatory receipt step for this order",
            "could you send us a quote for {item}",
            "the purchase order was approved by finance",
            "the {item} we ordered last month has not arrived yet",
            "please create a po for the renewal of the subscription",
            "the vendor sent the {podoc} please register it",
            "we need to buy five new {item} for the team",
            "please allocate the received devices to the users in the list",
            "the license expires next week and must be renewed",
            "the order was delivered to the wrong office",
            "can you check the status of the order",
            "please cancel the order as it is no longer needed",
            "the price on the invoice is different from the quote",
            "the budget for the purchase was approved",
            "we need a {item} for the new starter",
            "please purchase an extra {item} for the {location}",
            "the delivery note is missing from the package",
            "the received items were added to the inventory",
            "please confirm the goods receipt in the system",
            "the supplier asks for the po number",
            "we want to upgrade the {item} in the meeting rooms",
            "please raise a purchase request for the {item}",
            "the order contains the wrong model",
        ),
    },
    "Internal Project": {
        "slots": {
            "pcode": (
                "project code", "task code", "cost centre", "budget line", "work package",
                "billing code", "expense type", "activity code", "project task",
                "internal order", "wbs element",
            ),
            "psys": (
                "erp", "project accounting", "project tracker", "time tracking tool",
                "resource planner", "portfolio tool", "finance module",
            ),
        },
        "subjects": (
            "new {pcode}",
            "setup {pcode}",
            "create {pcode} in {psys}",
            "amend {pcode}",
            "close {pcode}",
            "project setup",
            "new project request",
            "add tasks to project",
            "project compliance form",
            "budget change for project",
            "project team members",
            "resource allocation",
            "project closure",
            "project milestone update",
            "add expense type",
            "internal project setup",
            "rename project",
            "project search option",
            "change project manager",
            "project end date extension",
            "project billing setup",
            "transfer hours between tasks",
            "project approval workflow",
            "project not visible in {psys}",
            "refund setup for project",
        ),
        "bodies": (
            "please set up the new {pcode} as described in the attached form",
            "could you create a {pcode} for the internal project",
            "please add the following tasks to the project",
            "the project end date needs to be extended until the end of the year",
            "please close the {pcode} as the project finished",
            "the project compliance form is attached for review",
            "we need to move the budget from one work package to another",
            "please add the team members to the project in the {psys}",
            "the project manager changed please update the {psys}",
            "the {pcode} is not visible in the {psys}",
            "please enable the search option for the project compliance forms",
            "we need a new expense type for the project",
            "please transfer the booked hours to the correct task",
            "the internal project needs a billing setup",
            "please rename the project to match the new scope",
            "the milestone dates changed please update the plan",
            "the project approval workflow is stuck",
            "the resource allocation for next quarter is attached",
            "please log the refund against the project",
            "team members cannot book hours on the {pcode}",
            "the cost centre of the project is wrong",
            "please archive the project after the final report",
            "the project was created with the wrong currency",
            "the client asked for a separate {pcode} for the change request",
        ),
    },
    "Administrative rights": {
        "slots": {
            "software": (
                "python", "visual studio", "development tools", "database client",
                "printer driver", "browser plugin", "statistics package", "design software",
                "virtual machine software", "docker", "java runtime", "sdk", "compiler",
                "firmware update tool", "diagram editor", "office add in", "screen recorder",
                "video editor", "ide", "command line tools", "windows update", "upgrade package",
            ),
        },
        "subjects": (
            "admin rights",
            "local admin rights",
            "admin access to install {software}",
            "install {software}",
            "temporary admin rights",
            "elevated privileges request",
            "installation request",
            "need administrator rights",
            "install {software} on laptop",
            "software installation",
            "admin password required",
            "upgrade {software}",
            "cannot install {software}",
            "administrator approval for installation",
            "run as administrator",
            "install driver",
            "remove admin rights",
            "admin right on laptop",
            "windows install upgrade",
            "installation blocked",
        ),
        "bodies": (
            "i need local admin rights to install {software}",
            "please give me temporary admin access on my laptop",
            "the installation of {software} asks for an administrator password",
            "could you install {software} on my machine",
            "i am a developer and need elevated privileges for my work",
            "the installer is blocked by policy",
            "please grant admin rights for one day so i can install the tools",
            "i need to run the setup as administrator",
            "the upgrade of {software} failed because i am not admin",
            "please remove my admin rights as the project is over",
            "the driver can only be installed by an administrator",
            "my manager approved the admin rights request",
            "i cannot update {software} without admin access",
            "please install the latest version of {software} remotely",
            "the software center does not show {software}",
            "admin rights are needed to change the network settings",
            "the new version of {software} requires administrator permission",
            "please add my account to the local administrators group",
            "i need admin access to install the printer driver at home",
            "the tool needs admin rights to register a service",
        ),
    },
}

# Which other categories a ticket of each class borrows sentences from (vocabulary
# overlap, as in real helpdesks).  Ordered tuples keep the sampling deterministic.
_NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "Access": ("Storage", "Administrative rights", "HR Support", "Miscellaneous"),
    "Administrative rights": ("Access", "Hardware", "Purchase"),
    "Hardware": ("Purchase", "Administrative rights", "Miscellaneous", "Storage"),
    "HR Support": ("Internal Project", "Access", "Miscellaneous"),
    "Internal Project": ("HR Support", "Miscellaneous", "Purchase"),
    "Miscellaneous": ("Hardware", "HR Support", "Access", "Purchase", "Internal Project"),
    "Purchase": ("Hardware", "Internal Project", "Miscellaneous"),
    "Storage": ("Access", "Hardware", "Miscellaneous"),
}

_HTML_SNIPPETS: tuple[str, ...] = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<b>urgent</b> <a href=\"javascript:alert(1)\">click here</a>",
    "<div style=\"color:red\">form content</div> &nbsp; <br>",
)
# fmt: on

# Tuning knobs (fractions of n); see the module tests for the resulting difficulty.
_P_OWN_SENTENCE = 0.78
_P_OWN_SUBJECT = 0.88
_P_FILLER = 0.45
_FRAC_VAGUE = 0.06
_FRAC_LABEL_NOISE = 0.04
_FRAC_LONG = 0.02  # 300-600 words
_FRAC_MEDIUM = 0.022  # 150-300 words


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


def _class_counts(n: int) -> dict[str, int]:
    """Largest-remainder rounding of CLASS_SHARES to exactly n rows."""
    total = sum(CLASS_SHARES.values())  # the rounded shares add up to 1.001
    raw = {c: CLASS_SHARES[c] / total * n for c in CATEGORIES}
    counts = {c: int(raw[c]) for c in CATEGORIES}
    order = sorted(CATEGORIES, key=lambda c: (-(raw[c] - counts[c]), CATEGORIES.index(c)))
    for c in order[: n - sum(counts.values())]:
        counts[c] += 1
    if n >= len(CATEGORIES):  # every class present, taken from the largest one
        for c in CATEGORIES:
            if counts[c] == 0:
                counts[c] = 1
                counts["Hardware"] -= 1
    return counts


def _fill(rng: random.Random, template: str, slots: Mapping[str, Sequence[str]]) -> str:
    """Replace each {slot} with a random word from the category or shared slots."""
    return _SLOT.sub(lambda m: rng.choice(slots[m.group(1)]), template)


def _slots(cat: str) -> dict[str, Sequence[str]]:
    merged: dict[str, Sequence[str]] = dict(_SHARED_SLOTS)
    for other in _NEIGHBOURS[cat]:  # neighbour slots let borrowed templates resolve
        merged.update(_VOCAB[other]["slots"])  # type: ignore[arg-type]
    merged.update(_VOCAB[cat]["slots"])  # type: ignore[arg-type]
    # cross-category templates such as "{location}" or "{item}" need every slot name
    for other in CATEGORIES:
        for key, words in _VOCAB[other]["slots"].items():  # type: ignore[union-attr]
            merged.setdefault(key, words)
    return merged


_SLOTS_BY_CAT: dict[str, dict[str, Sequence[str]]] = {c: _slots(c) for c in CATEGORIES}


def _pick_source(rng: random.Random, cat: str, p_own: float) -> str:
    return cat if rng.random() < p_own else rng.choice(_NEIGHBOURS[cat])


def _sentence(rng: random.Random, cat: str) -> str:
    src = _pick_source(rng, cat, _P_OWN_SENTENCE)
    tpl = rng.choice(_VOCAB[src]["bodies"])  # type: ignore[arg-type]
    return _clean(_fill(rng, tpl, _SLOTS_BY_CAT[src]))


def _header(rng: random.Random, subject: str, reply: bool) -> list[str]:
    """Flattened mail header: 're', weekday, month, 'pm', the subject again."""
    out: list[str] = []
    if reply and rng.random() < 0.7:
        out.append("re")
    out.append(rng.choice(_SHARED_SLOTS["weekday"]))
    if rng.random() < 0.45:
        out.append(rng.choice(_SHARED_SLOTS["month"]))
    if rng.random() < 0.4:
        out.append("pm")
    if rng.random() < 0.12:
        out.append(rng.choice(_HEADER_EXTRAS))
    if rng.random() < 0.65:
        words = _clean(subject).split()
        if len(words) > 2 and rng.random() < 0.4:  # the export often loses a word
            del words[rng.randrange(len(words))]
        out.extend(words)
    return out


def _message(rng: random.Random, cat: str, vague: bool, n_sent: int) -> list[str]:
    """One e-mail of the thread: greeting, a few sentences, sign-off, signature."""
    out: list[str] = []
    if rng.random() < 0.78:
        out.append(rng.choice(_GREETINGS))
    for _ in range(n_sent):
        if vague:
            out.append(_clean(rng.choice(_VAGUE_BODIES)))
        else:
            out.append(_sentence(rng, cat))
    if rng.random() < _P_FILLER:
        out.insert(min(len(out), 1 + rng.randrange(n_sent + 1)), _clean(rng.choice(_FILLERS)))
    if rng.random() < 0.72:
        out.append(rng.choice(_SIGNOFFS))
    if rng.random() < 0.45:
        out.append(_fill(rng, rng.choice(_SHARED_SLOTS["role"]), _SHARED_SLOTS))
    if rng.random() < 0.1:
        out.append(_clean(_fill(rng, rng.choice(_SIGNATURES), _SHARED_SLOTS)))
    return out


def _ticket(rng: random.Random, cat: str, kind: str) -> str:
    """One ticket text: raw subject line then the flattened, cleaned thread.

    kind: "normal", "vague" (no category cue), "medium" (150-300 words) or
    "long" (300-600 words, a long forwarded thread).
    """
    vague = kind == "vague"
    if vague:
        subject = rng.choice(_VAGUE_SUBJECTS)
    else:
        src = _pick_source(rng, cat, _P_OWN_SUBJECT)
        subject = _strip(_fill(rng, rng.choice(_VOCAB[src]["subjects"]), _SLOTS_BY_CAT[src]))  # type: ignore[arg-type]
    words: list[str] = subject.split()

    if kind == "long":
        target = rng.randint(300, 600)
    elif kind == "medium":
        target = rng.randint(150, 290)
    else:
        target = 0
    if kind in ("long", "medium"):
        n_msgs = 10**6  # until the target length is reached
    else:
        r = rng.random()
        n_msgs = 1 if r < 0.66 else 2 if r < 0.88 else rng.randint(3, 5)

    msg = 0
    while msg < n_msgs:
        with_header = msg > 0 or rng.random() < 0.5
        parts = _header(rng, subject, reply=msg > 0) if with_header else []
        n_sent = rng.choices((1, 2, 3), weights=(0.5, 0.35, 0.15))[0]
        if kind == "normal" and n_msgs == 1 and rng.random() < 0.12:
            n_sent, parts = 1, []  # short, subject + one line
        parts += _message(rng, cat, vague, n_sent)
        if target and rng.random() < 0.25:
            parts.append(_clean(rng.choice(_DISCLAIMERS)))
        words.extend(" ".join(parts).split())
        msg += 1
        if target and len(words) >= target:
            break
    if target:
        words = words[: max(target, len(subject.split()) + 5)]
    return " ".join(words)


def _perturb(rng: random.Random, text: str) -> str:
    """Near duplicate: change one or two words (replace, drop or insert)."""
    words = text.split()
    for _ in range(rng.randint(1, 2)):
        op = rng.random()
        i = rng.randrange(len(words))
        if op < 0.45 and len(words) > 4:
            del words[i]
        elif op < 0.75:
            words[i] = rng.choice(_SHARED_SLOTS["weekday"] + _SHARED_SLOTS["month"])
        else:
            words.insert(i, rng.choice(("urgent", "again", "asap", "still", "also", "today")))
    new = " ".join(words)
    return new if new != text else new + " again"


def _add_duplicates_and_html(
    rng: random.Random,
    docs: list[str],
    labels: list[str],
    kinds: list[str],
    text_cat: list[str],
) -> None:
    """In place: exact duplicates (3 pairs with conflicting labels, 6 within a class),
    12 near duplicates, and a few tickets with pasted HTML; each row is touched once."""
    n = len(docs)
    pool = [i for i in range(n) if kinds[i] == "normal" and text_cat[i] == labels[i]]
    rng.shuffle(pool)
    used: set[int] = set()

    def take(pred: Callable[[int], bool]) -> int:
        j = next(k for k in pool if k not in used and pred(k))
        used.add(j)
        return j

    for _ in range(3):  # the same text filed under two different classes
        src = take(lambda k: True)
        docs[take(lambda k, s=src: labels[k] != labels[s])] = docs[src]
    for cat in rng.sample(CATEGORIES, 6):  # the same request sent twice
        src = take(lambda k, c=cat: labels[k] == c)
        docs[take(lambda k, c=cat: labels[k] == c)] = docs[src]
    for _ in range(12):  # same ticket with one or two words different
        src = take(lambda k: True)
        docs[take(lambda k, s=src: labels[k] == labels[s])] = _perturb(rng, docs[src])
    for snippet in _HTML_SNIPPETS:  # pasted HTML that reports must escape
        j = take(lambda k: True)
        words = docs[j].split()
        cut = rng.randint(min(3, len(words)), len(words))
        docs[j] = " ".join([*words[:cut], "pasted content", snippet, *words[cut:]])


def generate_tickets(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Synthetic tickets (columns Document, Topic_group); same n and seed, same frame.

    Only a private random.Random(seed) is used, so the output never depends on global
    random state or hash ordering.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    rng = random.Random(seed)
    counts = _class_counts(n)
    labels = [c for c in CATEGORIES for _ in range(counts[c])]
    rng.shuffle(labels)

    # Kinds of tickets, at fixed fractions so the long tail is always there.
    kinds = ["normal"] * n
    idx = list(range(n))
    rng.shuffle(idx)
    n_long = max(1, round(_FRAC_LONG * n)) if n >= 20 else 0
    n_medium = round(_FRAC_MEDIUM * n)
    n_vague = round(_FRAC_VAGUE * n)
    pos = 0
    for kind, k in (("long", n_long), ("medium", n_medium), ("vague", n_vague)):
        for i in idx[pos : pos + k]:
            kinds[i] = kind
        pos += k

    # Label noise: the text is written for another category than its label.
    text_cat = list(labels)
    for i in rng.sample(range(n), round(_FRAC_LABEL_NOISE * n)):
        text_cat[i] = rng.choice([c for c in CATEGORIES if c != labels[i]])

    docs = [_ticket(rng, text_cat[i], kinds[i]) for i in range(n)]

    if n >= 50:
        _add_duplicates_and_html(rng, docs, labels, kinds, text_cat)

    return pd.DataFrame({"Document": docs, "Topic_group": labels})


def write_sample(path: str | Path = DEFAULT_PATH, n: int = 1000, seed: int = 0) -> Path:
    """Write generate_tickets(n, seed) as UTF-8 CSV (creating parent dirs); return path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = generate_tickets(n=n, seed=seed)
    # fixed "\n" line ends so the file is byte-identical on every platform
    frame.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: regenerate the bundled sample CSV."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_PATH), help="output CSV path")
    parser.add_argument("--n", type=int, default=1000, help="number of tickets")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)
    out = write_sample(args.out, n=args.n, seed=args.seed)
    print(f"wrote {args.n} tickets to {out}")


if __name__ == "__main__":
    main()
