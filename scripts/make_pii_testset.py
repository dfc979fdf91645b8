"""Write `tests/data/pii_snippets.jsonl`: labeled web-style snippets for measuring the `pii` stage.

Each line is `{"id", "text", "spans": [{"entity", "start", "end", "value"}]}` with gold character
spans. Snippets fill sentence templates with e-mail addresses, phone numbers in the national and
international formats of six regions, IPv4/IPv6 addresses, credit card numbers with valid Luhn
checksums, US SSNs, IBANs with valid check digits, URLs carrying credentials and person names from
many cultures; some snippets hold only look-alikes (dates, prices, versions, ISBNs, order numbers) so
that precision means something. Values are synthetic: example domains, documentation IP ranges,
random numbers that `phonenumbers` accepts as valid. Reruns write the same file (fixed seed).

    python scripts/make_pii_testset.py            # tests/data/pii_snippets.jsonl
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import json
import random
import re
import string
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import phonenumbers

REPO = Path(__file__).resolve().parents[1]
SNIPPETS = 420

FIRST_NAMES = [
    "James", "Mary", "Robert", "Jennifer", "Michael", "Linda", "David", "Elizabeth", "Thomas", "Sarah",
    "Emily", "Daniel", "Laura", "Peter", "Anna", "Oliver", "Charlotte", "Henry", "Sophie", "George",
    "Hans", "Ingrid", "Jürgen", "Katrin", "Lukas", "Marie", "Pierre", "Camille", "Élodie", "Antoine",
    "Carlos", "Lucía", "Alejandro", "Isabel", "Marco", "Giulia", "Priya", "Rahul", "Ananya", "Vikram",
    "Wei", "Mei", "Hiroshi", "Yuki", "Chinedu", "Amara", "Fatima", "Omar", "Olga", "Dmitri",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Taylor", "Anderson", "Thompson", "Walker", "Wright", "Hughes",
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Dubois", "Martin", "Bernard", "Moreau", "Laurent",
    "García", "Fernández", "López", "Rossi", "Bianchi", "Sharma", "Patel", "Gupta", "Iyer", "Reddy",
    "Chen", "Wang", "Tanaka", "Sato", "Okafor", "Mensah", "Haddad", "Kowalski", "Novak", "Ivanova",
]  # fmt: skip
EMAIL_DOMAINS = [
    "example.com", "example.org", "example.net", "mail.example.com", "acme-widgets.com", "northwind.co.uk",
    "kanzlei-weber.de", "boulangerie-martin.fr", "outback-tours.com.au", "campus.example.edu",
    "startup.io", "consulting-group.in",
]  # fmt: skip
PHONE_REGIONS = ["US", "GB", "DE", "FR", "IN", "AU"]

# Templates: {ENTITY} slots are PII with gold spans, {date}/{price}/... slots are look-alikes.
TEMPLATES = [
    "For questions about the workshop, email {EMAIL_ADDRESS} or call {PHONE_NUMBER} before Friday.",
    "Posted by {PERSON} on {date}. Great recipe, I added more garlic than the original called for.",
    "Contact {PERSON} at {EMAIL_ADDRESS} if you want to join the book club this autumn.",
    "Our office in the city centre is open on weekdays; phone {PHONE_NUMBER} to book an appointment.",
    "The server at {IP_ADDRESS} kept refusing connections after the update to version {version}.",
    "Written by {PERSON}. Last updated {date}. Reading time: {minutes} minutes.",
    "I paid with my card {CREDIT_CARD} and the shop charged me {price} twice, so I asked for a refund.",
    "{PERSON} said the new bridge would be finished by the end of the year, about {minutes} months late.",
    "Thanks to {PERSON} and {PERSON} for reviewing the draft of this chapter.",
    "Log excerpt: {time} connection from {IP_ADDRESS} rejected, retry in {minutes} seconds.",
    "Send your application to {EMAIL_ADDRESS}, subject line 'Volunteer {year}'.",
    "Mobile: {PHONE_NUMBER} | E-mail: {EMAIL_ADDRESS}",
    "According to {PERSON}, the garden club meets every second Tuesday at the library.",
    "The IPv6 address {IP_ADDRESS} answered the ping, but the gateway {IP_ADDRESS} did not.",
    "Please update the card on file ({CREDIT_CARD}) before order {order} can ship.",
    "My SSN is {US_SSN}, can someone tell me why the form keeps rejecting it?",
    "Wire the deposit to IBAN {IBAN_CODE} and quote invoice {order} as the reference.",
    "The backup job connects to {URL_CREDENTIALS}/backups every night at {time}.",
    "Interview with {PERSON}, who has run the village bakery for {minutes} years.",
    "If the delivery is late, ring {PHONE_NUMBER} and ask for {PERSON}.",
    "Dear {PERSON}, thank you for your letter of {date}; we have forwarded it to {EMAIL_ADDRESS}.",
    "Reported by {PERSON} ({EMAIL_ADDRESS}): the app crashes when the battery is below {minutes} percent.",
    "Blocked {IP_ADDRESS} after {minutes} failed logins; see ticket {order}.",
    "Call us on {PHONE_NUMBER}, lines are open from {time} until late.",
    "Photo: {PERSON} for the Evening Gazette. All rights reserved.",
    "Card number {CREDIT_CARD}, expiry {month}/{yy}. Please do not post this publicly, {PERSON}!",
    "My colleague {PERSON} wrote the first version of this guide in {year}.",
    "Old config still had db_url = {URL_CREDENTIALS}/prod in it, which nobody noticed for months.",
    "New address for invoices: {EMAIL_ADDRESS}. The old one will stop working in {month_name}.",
    "Reach the tour guide on {PHONE_NUMBER} or the hotel desk on {PHONE_NUMBER}.",
    "Test card for the sandbox: {CREDIT_CARD} (any future expiry date, CVC {minutes}0).",
    "Someone used {CREDIT_CARD} at a petrol station abroad; the bank froze the account the same day.",
    "Allow-list: {IP_ADDRESS}, {IP_ADDRESS} and the VPN exit node.",
    "{PERSON} and {PERSON} founded the cooperative in {year} with {minutes} members.",
    "Questions? Text {PHONE_NUMBER}; replies usually within a day.",
]
# Look-alikes without PII: the precision side of the set.
DISTRACTORS = [
    "The ISBN of the second edition is {isbn}, printed in {year} with {minutes} new illustrations.",
    "Prices start at {price} and the version {version} firmware is free for existing owners.",
    "Order {order} left the warehouse on {date} and should arrive within {minutes} days.",
    "The meeting moved from {time} to {time} on {date} because of the storm.",
    "Population grew by {minutes} percent between {year} and {year2}, the report says.",
    "Part number {part} fits models built after {year}; torque the bolts to {minutes} Nm.",
    "The trail climbs {minutes}00 metres over the first {minutes} kilometres.",
    "Sales of the {year} vintage reached {price} per bottle at auction in Lyon.",
]

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "September", "October"]


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    """A number of `length` digits starting with `prefix` whose Luhn checksum is valid."""
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, digit in enumerate(reversed(body)):
        d = int(digit)
        if i % 2 == 0:  # these digits are doubled once the check digit is appended
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def credit_card(rng: random.Random) -> str:
    brand = rng.choice(["visa", "visa", "mastercard", "amex", "discover"])
    if brand == "amex":
        number = luhn_complete(rng.choice(["34", "37"]), 15, rng)
        groups = [number[:4], number[4:10], number[10:]]
    else:
        prefix = {"visa": "4", "mastercard": str(rng.randint(51, 55)), "discover": "6011"}[brand]
        number = luhn_complete(prefix, 16, rng)
        groups = [number[i : i + 4] for i in range(0, 16, 4)]
    return rng.choice([" ", "-", ""]).join(groups)


def phone_number(rng: random.Random, region: str) -> str:
    """A random number that `phonenumbers` validates, in one of the region's usual written forms."""
    kind = rng.choice([phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE])
    example = str(phonenumbers.example_number_for_type(region, kind).national_number)
    while True:
        keep = len(example) - rng.randint(4, 6)
        candidate = example[:keep] + "".join(rng.choice(string.digits) for _ in example[keep:])
        number = phonenumbers.parse(candidate, region)
        if phonenumbers.is_valid_number(number):
            break
    style = rng.choice(["national", "national", "international", "e164"])
    if style == "e164":
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if style == "national"
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    text = phonenumbers.format_number(number, fmt)
    if region == "US" and style == "national" and rng.random() < 0.5:
        digits = re.sub(r"\D", "", text)
        text = rng.choice(["-", "."]).join([digits[:3], digits[3:6], digits[6:]])
    return text


def ip_address(rng: random.Random) -> str:
    if rng.random() < 0.6:
        net = rng.choice(["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "10.0.0.0/8", "172.16.0.0/12"])
        network = ipaddress.ip_network(net)
        return str(network[rng.randrange(1, network.num_addresses - 1)])
    address = ipaddress.IPv6Address(
        (0x20010DB8 << 96)
        | rng.getrandbits(16) << 80
        | rng.choice([0, rng.getrandbits(48)]) << 16
        | rng.getrandbits(16)
    )
    return rng.choice([address.compressed, address.compressed, address.exploded])


def iban(rng: random.Random) -> str:
    country, length = rng.choice([("DE", 18), ("GB", 18), ("FR", 23), ("NL", 14)])
    if country == "GB":
        bban = "NWBK" + "".join(rng.choice(string.digits) for _ in range(14))
    elif country == "NL":
        bban = "ABNA" + "".join(rng.choice(string.digits) for _ in range(10))
    else:
        bban = "".join(rng.choice(string.digits) for _ in range(length))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    code = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4)) if rng.random() < 0.5 else code


def us_ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def email(rng: random.Random) -> str:
    first, last = (
        re.sub(r"[^a-z]", "", n.lower().translate(str.maketrans("üéí", "uei"))) for n in person(rng).split()
    )
    local = rng.choice(
        [f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}{rng.randint(1, 99)}", f"{first}+news", last]
    )
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


def url_credentials(rng: random.Random) -> str:
    user = rng.choice(["admin", "backup", "deploy", "root", "svc_report"])
    password = "".join(
        rng.choice(string.ascii_letters + string.digits + "!$%") for _ in range(rng.randint(8, 14))
    )
    host = rng.choice(["db.example.com:5432", "ftp.example.org", "files.example.net", "192.0.2.44:8080"])
    return f"{rng.choice(['https', 'ftp', 'postgres', 'sftp'])}://{user}:{password}@{host}"


ENTITY_MAKERS: dict[str, Callable[[random.Random], str]] = {
    "EMAIL_ADDRESS": email,
    "IP_ADDRESS": ip_address,
    "CREDIT_CARD": credit_card,
    "US_SSN": us_ssn,
    "IBAN_CODE": iban,
    "URL_CREDENTIALS": url_credentials,
    "PERSON": person,
}


def filler(name: str, rng: random.Random) -> str:
    """A look-alike value that is not personal data."""
    year = rng.randint(1990, 2025)
    return {
        "date": f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {year}",
        "price": f"${rng.randint(5, 2500)}.{rng.randint(0, 99):02d}",
        "version": f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 40)}",
        "minutes": str(rng.randint(2, 59)),
        "order": f"#{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        "time": f"{rng.randint(7, 22):02d}:{rng.choice(['00', '15', '30', '45'])}",
        "year": str(year),
        "year2": str(year + rng.randint(1, 10)),
        "month": f"{rng.randint(1, 12):02d}",
        "yy": str(rng.randint(26, 31)),
        "month_name": rng.choice(MONTHS),
        "isbn": f"978-{rng.randint(0, 9)}-{rng.randint(10, 99)}-{rng.randint(100000, 999999)}-{rng.randint(0, 9)}",
        "part": f"{rng.choice('ABKX')}{rng.randint(100, 999)}-{rng.randint(10, 99)}",
    }[name]


def fill(template: str, rng: random.Random, phone_regions: Iterator[str]) -> dict:
    """Fill a template's slots left to right, recording the gold span of every PII value."""
    text, spans, pos = "", [], 0
    for match in re.finditer(r"\{(\w+)\}", template):
        text += template[pos : match.start()]
        slot = match.group(1)
        if slot == "PHONE_NUMBER":
            value = phone_number(rng, next(phone_regions))
        elif slot in ENTITY_MAKERS:
            value = ENTITY_MAKERS[slot](rng)
        else:
            value = filler(slot, rng)
        if slot.isupper():
            spans.append({"entity": slot, "start": len(text), "end": len(text) + len(value), "value": value})
        text += value
        pos = match.end()
    return {"text": text + template[pos:], "spans": spans}


def build(seed: int = 6, count: int = SNIPPETS) -> list[dict]:
    rng = random.Random(seed)
    templates, distractors = itertools.cycle(TEMPLATES), itertools.cycle(DISTRACTORS)
    phone_regions = itertools.cycle(PHONE_REGIONS)
    snippets = []
    for i in range(count):
        # Every sixth snippet is a distractor; phone numbers cycle through the regions.
        template = next(distractors) if i % 6 == 5 else next(templates)
        snippets.append({"id": f"pii-{i:04d}", **fill(template, rng, phone_regions)})
    return snippets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "pii_snippets.jsonl")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    snippets = build(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        for snippet in snippets:
            fh.write(json.dumps(snippet, ensure_ascii=False) + "\n")
    counts = Counter(span["entity"] for s in snippets for span in s["spans"])
    print(
        f"{args.out}: {len(snippets)} snippets; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )


if __name__ == "__main__":
    main()
