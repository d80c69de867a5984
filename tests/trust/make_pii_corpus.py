# ruff: noqa: E501  (data tables: one value list per line reads better than wrapped)
"""Build tests/trust/pii_corpus.jsonl: the labelled corpus for farmops.redact_pii.

Written from the kinds' real formats (issuer prefixes and Luhn for cards, ISO 13616 check digits
for IBANs, NG mobile ranges and E.164 for phones, ...) and from farm text that merely looks like
them, never from the detector's patterns. Every item is ``{"id", "text", "findings"}`` where a
finding is ``{"kind", "start", "length"}`` in 0-based characters (Python code points, which is
what PostgreSQL counts). Labels are computed from the inserted values, so offsets cannot drift.

Run ``python tests/trust/make_pii_corpus.py [OUT]`` to regenerate (deterministic).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

OUT = Path(__file__).with_name("pii_corpus.jsonl")
rng = random.Random(20261202)


# --- independent oracles for the labels -----------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def with_luhn(prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        if luhn_ok(body + check):
            return body + check
    raise AssertionError


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "")
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def make_iban(country: str, bban: str) -> str:
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    return f"{country}{check:02d}{bban}"


def grouped(s: str, sizes: list[int], sep: str = " ") -> str:
    out, i = [], 0
    for n in sizes:
        out.append(s[i : i + n])
        i += n
    assert i == len(s), (s, sizes)
    return sep.join(out)


def by4(s: str, sep: str = " ") -> str:
    return sep.join(s[i : i + 4] for i in range(0, len(s), 4))


# --- values per kind -----------------------------------------------------------------------------

EMAILS = [
    "amina.bello@gmail.com", "musa_ibrahim@yahoo.co.uk", "chinedu.okafor+feed@farmco.ng",
    "info@kadunapoultry.com.ng", "o.adeyemi@outlook.com", "sales@agro-feeds.ng", "j.smith@example.org",
    "ngozi1987@hotmail.com", "vet.clinic@zaria-vets.org.ng", "accounts@hatchery-ovh.com",
    "Emeka.Eze@Company.NG", "fatima.yusuf@abu.edu.ng", "procurement@olam-agri.com", "k.o@farm.co",
    "tunde-ade@protonmail.com", "halima.sani@icloud.com", "bukola_o@yahoo.com", "farmhand42@gmail.com",
    "ifeoma.n@mtnonline.com", "support@paystack.com", "billing@flutterwave.com", "chioma@agrohub.africa",
    "yakubu.d@fmard.gov.ng", "zainab.umar@nitda.gov.ng", "dr.okonkwo@unn.edu.ng", "orders@chi-farms.com",
    "peter.obi2023@gmail.com", "mary-jane.akpan@live.com", "abdullahi_g@ymail.com", "kemi@ovoeggs.ng",
    "logistics@kobo360.com", "hr@dangote.com", "adamu.bala@npc.gov.ng", "renée.dubois@ferme.fr",
    "seun.o@startup.io", "j.doe@mail.example.com", "layers.unit@feedmill.ng", "BOLA.T@GMAIL.COM",
    "t.ogunleye@lasu.edu.ng", "ebuka99@outlook.com", "aisha.m.ali@hotmail.co.uk", "ops@poultryhub.com.ng",
    "nnamdi.k@agromall.ng", "grace_e@ui.edu.ng", "farmer.john@gmx.de", "vetdesk@zoetis.com",
]  # fmt: skip

NG_PHONES = [
    "08031234567", "0803 123 4567", "0803-123-4567", "+234 803 123 4567", "+2348031234567",
    "+234-803-123-4567", "07065551234", "0706 555 1234", "0810 222 3344", "08122233344", "09012345678",
    "0902 345 6789", "0913 456 7890", "+234 701 234 5678", "2348091234567", "234 809 123 4567",
    "0805 987 6543", "08167890123", "+234 916 555 0101", "0708-444-9921", "+234 (0) 803 123 4567",
    "0802 11 22 333", "+234 802 556 7788", "0909 876 5432", "07012345678", "0814 321 0987",
]  # fmt: skip
INTL_PHONES = [
    "+14155550132", "+1 415 555 0132", "+44 20 7946 0958", "+447700900123", "+233 24 123 4567",
    "+254 712 345678", "+27 82 123 4567", "+49 30 901820", "+33 1 23 45 67 89", "+91 98765 43210",
    "+1-415-555-0132", "+1 (415) 555-0132", "+220 123 4567", "+237 6 71 23 45 67", "+86 138 0013 8000",
    "+971 50 123 4567", "+44 7911 123456", "+61 2 9876 5432", "+31 20 123 4567", "+255 754 123 456",
]  # fmt: skip

CARD_PREFIXES = [  # (issuer prefix, length, grouping)
    ("4", 16, [4, 4, 4, 4]), ("4", 13, None), ("51", 16, [4, 4, 4, 4]), ("55", 16, [4, 4, 4, 4]),
    ("2221", 16, [4, 4, 4, 4]), ("2720", 16, [4, 4, 4, 4]), ("34", 15, [4, 6, 5]), ("37", 15, [4, 6, 5]),
    ("6011", 16, [4, 4, 4, 4]), ("65", 16, [4, 4, 4, 4]), ("36", 14, [4, 6, 4]), ("3528", 16, [4, 4, 4, 4]),
    ("62", 16, [4, 4, 4, 4]), ("62", 19, None), ("506099", 19, [4, 4, 4, 4, 3]),
    ("506102", 19, None), ("650002", 16, [4, 4, 4, 4]), ("4", 19, None), ("5399", 16, [4, 4, 4, 4]),
]  # fmt: skip
KNOWN_TEST_CARDS = [
    "4111111111111111", "4012888888881881", "5555555555554444", "5105105105105100", "378282246310005",
    "6011111111111117", "3530111333300000", "30569309025904", "4222222222222", "2223003122003222",
]  # fmt: skip

IBAN_BBANS = [
    ("GB", "WEST12345698765432"), ("DE", "370400440532013000"), ("FR", "20041010050500013M02606"),
    ("NL", "ABNA0417164300"), ("BE", "539007547034"), ("ES", "21000418450200051332"),
    ("IT", "X0542811101000000123456"), ("CH", "00762011623852957"), ("AT", "1904300234573201"),
    ("SE", "50000000058398257466"), ("NO", "86011117947"), ("DK", "00400440116243"),
    ("FI", "12345600000785"), ("PL", "109010140000071219812874"), ("PT", "000201231234567890154"),
    ("IE", "AIBK93115212345678"), ("LU", "0019400644750000"), ("SA", "80000000608010167519"),
    ("AE", "0331234567890123456"), ("EG", "0019000500000000263180002"),
    ("MU", "BOMM0101101030300200000MUR"), ("TR", "0006100519786457841326"),
    ("GR", "01101250000000012300695"), ("CZ", "08000000192000145399"), ("RO", "AAAA1B31007593840000"),
    ("HU", "117730161111101800000000"), ("KW", "CBKU0000000000001234560101"),
    ("QA", "DOHB00001234567890ABCDEFG"), ("GE", "NB0000000101904917"), ("MA", "011519000001205000534921"),
    ("TN", "10006035183598478831"), ("SN", "A01200100100123456789012"), ("CI", "CI0080111301134291200589"),
    ("BJ", "BJ0610100100144390000769"), ("ML", "ML0160200200100000000013"),
    ("DE", "500105175407324931"), ("GB", "NWBK60161331926819"), ("FR", "30006000011234567890189"),
    ("NL", "INGB0001234567"), ("ES", "00491500051234567892"), ("IT", "K0300203280000400162854"),
    ("BE", "096123456769"), ("CH", "0483000001234567Z"), ("AT", "2011182231400400"), ("PL", "249000100100001000000000"),
    ("IE", "BOFI90001712345678"), ("SE", "30000000010000123456"),
]  # fmt: skip

IPV4 = [
    "192.168.1.20", "10.0.0.1", "172.16.254.3", "8.8.8.8", "41.58.112.9", "105.112.44.201", "196.46.20.10",
    "127.0.0.1", "203.0.113.45", "198.51.100.7", "102.89.33.14", "197.210.52.6", "154.113.16.2",
    "10.10.10.254", "192.0.2.1", "41.203.64.130", "100.64.0.17", "169.254.12.34", "172.31.0.250",
    "129.205.113.2", "62.173.32.1", "185.199.108.153", "1.1.1.1", "255.255.255.255", "192.168.100.1",
]  # fmt: skip
IPV6 = [
    "2001:db8::1", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "fe80::1ff:fe23:4567:890a", "::1",
    "2c0f:f4c0:1::2", "2001:db8:0:0:1:0:0:1", "::ffff:192.0.2.128", "2001:db8::", "2a00:1450:4001:82a::200e",
    "2c0f:fb50:4003::8a", "fd00::7", "2001:DB8:ABCD:12::1", "fe80::a00:27ff:fe4e:66a1", "2001:db8:1::ab9:C0A8:102",
    "2c0f:f7a8:8011::1a2b",
]  # fmt: skip

NINS = ["12345678901", "70123456789", "34567890123", "45678901234", "89012345678", "23456789012",
        "56789012345", "67890123456", "91234567810", "38475610293", "10293847561", "47561029384",
        "65748392010", "19283746501", "84736251900", "30192837465", "72615349081", "58203947162",
        "26374859102", "93847561020"]  # fmt: skip
BVNS = ["22123456789", "22234567890", "22345678901", "22456789012", "22567890123", "22198765432",
        "22311122233", "22400011122", "22155566677", "22288899900", "22377788899",
        "22466655544", "22512312312"]  # fmt: skip
NIN_CONTEXTS = [
    "NIN: {v}", "my NIN is {v}", "National Identification Number {v}", "nin {v}", "(NIN {v})",
    "NIN no. {v}", "National Identity Number: {v}", "NIMC slip shows NIN {v}", "his NIN - {v}",
    "national identification number is {v}",
]  # fmt: skip
BVN_CONTEXTS = [
    "BVN {v}", "BVN: {v}", "Bank Verification Number: {v}", "bvn is {v}", "her BVN {v}",
    "BVN no: {v}", "bank verification number {v}", "(BVN: {v})",
]  # fmt: skip
SSNS = ["123-45-6789", "078-05-1120", "219-09-9999", "536-22-1234", "401-77-3029", "772-10-5566",
        "123-12-1234", "665-43-2101", "001-01-0001", "899-99-9999", "457-55-5462", "312-48-9076",
        "603-21-8844", "145-67-2390", "250-80-1357"]  # fmt: skip

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0Ij"
    "oxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
JWT2 = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZhcm0ta2V5LTEifQ.eyJmYXJtIjoiZjFhMmIzIiwicm9sZSI6Im93bmVyIiwiZXhwIj"
    "oxNzk2MDAwMDAwfQ.dGhpcy1pcy1ub3QtYS1yZWFsLXNpZ25hdHVyZS1idXQtbG9va3MtbGlrZS1vbmU"
)
PEM_RSA = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi8dp4zR8Uq0zRm5\n"
    "kG7r1PxYH0aH2mXt4Zq9q5Hb8n1Jg0Xh6uYwW2C3fD8eRtT4vUo=\n-----END RSA PRIVATE KEY-----"
)
PEM_PKCS8 = (
    "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2\n"
    "OF/2NxApJCzGCEDdfSp6VQO30hyhRANCAAQRWz+jn65BtOMvdyHKcvjBeBSDZH2r\n-----END PRIVATE KEY-----"
)
PEM_OPENSSH = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDZK4yS0rJ3e1p2u7QhK9c2W9yF3m6pQe5Q0N7lD8e1AAAAmJ3q9x8=\n-----END OPENSSH PRIVATE KEY-----"
)
PEM_EC = (
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n"
    "AwEHoUQDQgAEPR3tU2Fta9ktY+6P9G0cWO+0kETA6SFs38GecTyfWxs=\n-----END EC PRIVATE KEY-----"
)
AWS_KEYS = ["AKIAIOSFODNN7EXAMPLE", "AKIAJ7Q2X4M9PL3RT8ZA", "ASIAY34FZKBOKMUTVV7A", "AKIA4GHT2KQ7WMXZ3N5P",
            "ASIAQ3EGRK7PLN2VX4TB", "AKIAZ9Y8X7W6V5U4T3S2", "AKIA2E0A8F3B244C9986", "ASIA5KLMNOPQRS7TUV2W"]  # fmt: skip
TOKENS = [
    "sk_live_51H8aPqL2eZvKYlo2C8xR3nT7mW4", "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "xoxb-263594206564-2343684245731-7hwzjaOFfxI8UGKW2qLkEvi5", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "FLWSECK_TEST-a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6-X", "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789abcdefghij",
    "xoxp-123456789012-123456789012-123456789012-0123456789abcdef0123456789abcdef",
    "rk_live_51H8aPqL2eZvKYlo2C8xR3nT7mW4", "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5",
]  # fmt: skip
BEARER_TOKENS = ["mF_9.B5f-4.1JqM", "8f14e45fceea167a5a36dedd4bea2543", "ya29.a0AfH6SMBx3kQ9zLr7Tn2Pq",
                 "tk_0a1b2c3d4e5f6g7h8i9j0k1l", "AbCdEf0123456789GhIjKl", "opaque-7d9f2c1e-88aa-4b1e-9c0d"]  # fmt: skip
KEYVALUES = [  # (prefix, value, suffix): the finding is the value only
    ("api_key=", "9f8e7d6c5b4a39281706f5e4d3c2b1a0", ""), ("API_KEY: '", "Zm9vYmFyYmF6cXV4MTIzNDU2", "'"),
    ('"client_secret": "', "q8Xv2LpR7mN4kT9wZs3Y", '"'), ("password=", "Kaduna2026!", ""),
    ("aws_secret_access_key = ", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""),
    ("access_token: ", "a1b2c3d4e5f6g7h8i9j0", ""), ("secret_key=", "s3cr3t-K3y-2026-farm", ""),
    ("PAYSTACK_SECRET=", "sk_test_b7c1e29a4d5f6a8b9c0d1e2f", ""), ("token=", "tok_8H2jK9mN3pQ5rS7t", ""),
    ("db password: ", "Hens&Eggs4ever", ""), ("apikey: ", "AbC123xYz789QwE456", ""),
    ("X-Api-Key: ", "5f0c7e1a9b2d4c6e8a0b1c2d3e4f5a6b", ""), ("refresh_token=", "rt_9a8b7c6d5e4f3g2h1i0j", "&scope=all"),
    ("SMTP_PASSWORD=", "mail-Pass-2026", ""),
]  # fmt: skip


# --- farm sentences --------------------------------------------------------------------------------

CONTEXT = {
    "email": [
        "Send the feed invoice to {v} before Friday.",
        "Email: {v}",
        "Vet contact <{v}>",
        "Reply to {v} with the mortality report for pen 3.",
        "mailto:{v}",
        "(owner: {v})",
        "cc {v}; accounts@ only if the batch is over 2,000 birds",
        "Their buyer is {v}, pays in 30 days.",
        "Forward the 2026-11-30 vaccination schedule to {v}.",
        '"{v}" asked for 40 crates of eggs.',
        "Ọ̀gá said write to {v} 🐔 about the layers.",
    ],
    "phone": [
        "Call Musa on {v} about the 1,200 layers in pen 3.",
        "Driver: {v}",
        "tel {v}",
        "If the generator fails, ring {v} (night guard).",
        "Vet Dr. Bello - {v} - comes Tuesdays.",
        "WhatsApp {v} for the maize delivery, 18000000 kobo agreed.",
        "Buyer phone {v}; 40 crates at ₦4,500.",
        "Contact: {v}.",
        "Ìyá Ṣadé 🥚 {v}",
        "New number is {v}, the old one is off.",
    ],
    "payment_card": [
        "Paid the hatchery with card {v}, exp 09/27.",
        "Card: {v}",
        "customer card number {v} declined",
        "Use the farm debit card {v} for the feed order.",
        "(card {v})",
        "Charge ₦180,000 to {v} today.",
        "Verve {v} was swallowed by the ATM in Zaria.",
        "card no. {v}; CVV not stored",
    ],
    "iban": [
        "Pay the equipment supplier to IBAN {v}.",
        "IBAN: {v}",
        "Transfer €2,400 to {v} (incubator deposit).",
        "Bank details — {v}, BIC on the invoice.",
        "Beneficiary account {v}",
        "wire to {v} by 2026-12-15",
    ],
    "ip_address": [
        "The barn camera is at {v}.",
        "Login from {v} was blocked.",
        "server {v}",
        "Set the feeder controller gateway to {v} and reboot.",
        "ping {v} failed twice at 03:10.",
        "Sensor hub ({v}) reports 31.5 °C in house 2.",
    ],
    "secret": [
        "The old key {v} must be rotated.",
        "Found {v} in the notes file.",
        "token: {v}",
        "creds for the weighbridge API {v} (do not share)",
        "{v}",
    ],
}

NEGATIVES = [
    # money
    "Feed cost 18000000 kobo this month.",
    "Paid ₦180,000 for 20 bags of layer mash.",
    "Balance: ₦1,250,000.00 after the egg sales.",
    "Credit 4500000 kobo to the drinkers account.",
    "Sold 320 crates at ₦4,800 each = ₦1,536,000.",
    "Budget for December is NGN 2,750,000.",
    "We owe the feed mill 45000000 kobo.",
    "Transport was ₦35,500 (two trips).",
    "Total 123456789 kobo across all batches.",
    "Price per kg: ₦2,150.50",
    # dates and times
    "Vaccinate on 2026-11-30 at 07:30.",
    "Next Gumboro dose 30/11/2026.",
    "Brooding started 01.12.2026.",
    "Layers moved on 12/03/26, production from week 18.",
    "Meeting 2026-12-02T10:30:00+01:00 with the vet.",
    "Lights on 05:30:00 to 21:00:00 in house 4.",
    "Harvest window 2026-12-01 to 2026-12-14.",
    "Week 52 of 2026, day 364.",
    "Timestamp 20261130103045 in the scale log.",
    "Shift 22:00-06:00 for the night guard.",
    # invoices, batches, orders
    "Invoice INV-2026-000123 is overdue.",
    "BATCH-4471-22 hatched 9,850 chicks.",
    "Order #ORD-0803-1234-567 shipped.",
    "PO 2026/11/0457 approved by the manager.",
    "Receipt no. 000412987 from the vet pharmacy.",
    "Waybill WB-08031234 arrived at the gate.",
    "Batch number 20261130-07 went into house 3.",
    "Ticket 4111-22-0099 closed.",
    "Invoice 80312345 was paid twice.",
    "GRN/2026/0001234 received 600 bags.",
    "Lot L2026-11-4471 of Newcastle vaccine expires 2027-05.",
    "Delivery note DN-0905-2233-441.",
    "Job card 7734-22-9012 for the borehole pump.",
    "Ref: FMARD/ADP/2026/1187",
    "SKU 6001234567890 (layer mash 25kg).",
    "Tracking number 1Z999AA10123456784 from the courier.",
    "Customer ID 00045123 bought 50 crates.",
    "Order 08031234 (eight digits) confirmed.",
    "Serial 0803123456 on the incubator plate.",
    "Account code 080312345678 in the ledger.",
    "NUBAN 0123456789 for farm payments (bank will confirm).",
    # weights, counts, measures
    "Average weight 2.35 kg at day 42.",
    "Mortality 14 of 10,000 birds this week.",
    "Flock size 12,500 birds in 4 houses.",
    "Feed intake 118 g/bird/day.",
    "FCR 1.62 at 2.4 kg liveweight.",
    "Water 245.5 L per 1000 birds.",
    "Egg weight 62.3 g; 27,450 eggs this week.",
    "Temperature 31.5 °C, humidity 65%.",
    "Dosed 1.5 ml per litre for 3 days.",
    "Moved 3,200 pullets; 1,150 left in pen 2.",
    "House 2: 9,876 birds, 88.4% lay.",
    "Stock count 1,234,567 eggs this year.",
    "Weighed 1000 birds: 2.1 - 2.6 kg range.",
    # card-like but invalid or not cards
    "Reference 4111111111111112 is the old contract number.",
    "Bag code 5555555555554445 on the label.",
    "Meter reading 1234 5678 9012 3456 kWh cumulative.",
    "Scratch card 7390 1234 5678 9012 used.",
    "Transaction ID 9876543210987654 settled.",
    "Container MSCU 1234567890123 at Apapa.",
    "Barcode 0123456789012 on the feed bag.",
    "Pin 3782 8224 6310 006 is not a card.",
    "Loyalty number 6011-1111-1111-1118.",
    "16 digits: 1111 2222 3333 4444.",
    "Ledger entry 20261130000000123 for the December close.",
    "Vaccine lot 4000123412341235.",
    # IP-like
    "Firmware v1.2.3.4 on the egg counter.",
    "Upgrade to version 2.10.3 of the app.",
    "Section 1.2.3.4.5 of the biosecurity manual.",
    "Ratio 1:2:3 for the feed mix.",
    "GPS 9.0765, 7.3986 for the Abuja farm.",
    "Score 10.5.2026 (typo for the date).",
    "Grade 999.1.1.1 in the old system.",
    "MAC 00:1A:2B:3C:4D:5E on the camera.",
    "Coordinates 10.5222° N, 7.4383° E.",
    "Step 3.1.4 of the SOP.",
    "Address 256.300.1.1 is invalid.",
    "Use the python package numpy==1.26.4 for the report.",
    # id-like without context
    "Batch 12345678901 of vaccine arrived.",
    "Carton code 22123456789 on the pallet.",
    "Bird ring numbers 10000000001 to 10000000950.",
    "Phone case order 70123456789 shipped.",
    "The NIN office opens at 9am.",
    "Bring your BVN slip and a passport photo.",
    "000-12-3456 is the old pallet code.",
    "Room 666-12-3456 key.",
    "Code 900-12-3456 for the gate.",
    "Dial 123-00-4567 internal.",
    "Part 123-45-0000 is out of stock.",
    # secret-like
    "He is the bearer of bad news.",
    "The bearer cheque was for ₦50,000.",
    "Token count 15000 per run.",
    "Key points: feed, water, light.",
    "AKIA is not a key by itself.",
    "The password is on the sticky note.",
    "api_key is set in the vault, ask the manager.",
    "Use eyJ as the prefix check in tests.",
    "-----BEGIN NOTES----- feed plan -----END NOTES-----",
    "secret: ask Aisha",
    "token: pending",
    "password: changeme",
    "access_token is rotated monthly",
    # email-like
    "Tag the vet @dr_bello on the group.",
    "user@localhost cannot receive mail.",
    "Feed @ ₦9,500 per bag.",
    "Meet at 10am @ the hatchery.",
    "Email address coming soon.",
    "Follow @KadunaPoultry on X.",
    "The file is report@2026.pdf.",
    # phone-like
    "Call +234 later (no number yet).",
    "Dial 112 in an emergency.",
    "USSD *737*2*5000#",
    "Short code 32123 for the SMS alerts.",
    "Pen +2 degrees after vaccination.",
    "ISBN 978-0-12-345678-9 (poultry handbook).",
    "Phone number: ask the gateman.",
    "Temp range -5 to +40.",
    "Generator ran 1,024 hours.",
    # IBAN-like
    "GB00WEST12345698765432 is a test string with a bad check.",
    "Code DE00370400440532013000 is invalid.",
    "Model NL91 incubator, 2 units.",
    "Part AB12 CDEF 3456 7890.",
    # ordinary farm text
    "Birds in house 3 look weak; check the water line.",
    "Gumboro vaccine given on day 14 in drinking water.",
    "Record every mortality the same day with the cause.",
    "Maize price went up again this week.",
    "The boys cleaned the drinkers and changed the litter.",
    "Need 40 bags of grower mash by Monday.",
    "Egg production dropped 3% after the heat wave.",
    "Ask the vet about coccidiosis in pen 2.",
    "Ìlànà tuntun fún àwọn adìẹ 🐔 — new routine for the hens.",
    "Kaji 500 sun mutu saboda zafi.",
    "Sold spent layers to the market in Kano.",
    "Solar panel output 4.2 kWh yesterday.",
    "",
    " ",
    "\n\n",
]


def item(parts: list[tuple[str, str | None]]) -> dict:
    """Concatenate (text, kind-or-None) parts; label every part that has a kind."""
    text, findings = "", []
    for chunk, kind in parts:
        if kind:
            findings.append({"kind": kind, "start": len(text), "length": len(chunk)})
        text += chunk
    return {"text": text, "findings": findings}


def in_context(kind: str, value: str, template: str | None = None) -> dict:
    template = template or rng.choice(CONTEXT[kind])
    before, after = template.split("{v}")
    return item([(before, None), (value, kind), (after, None)])


def build() -> list[dict]:
    items: list[dict] = []
    for v in EMAILS:
        items.append(in_context("email", v))
    for v in NG_PHONES + INTL_PHONES:
        items.append(in_context("phone", v))
    cards = list(KNOWN_TEST_CARDS)
    for prefix, length, groups in CARD_PREFIXES:
        for _ in range(2):
            n = with_luhn(prefix, length)
            cards.append(grouped(n, groups, rng.choice([" ", "-"])) if groups and rng.random() < 0.7 else n)
    for v in cards:
        assert luhn_ok(v.replace(" ", "").replace("-", "")), v
        items.append(in_context("payment_card", v))
    for i, (country, bban) in enumerate(IBAN_BBANS):
        iban = make_iban(country, bban)
        assert iban_ok(iban)
        items.append(in_context("iban", by4(iban) if i % 2 else iban))
    for v in IPV4 + IPV6:
        items.append(in_context("ip_address", v))
    items.append(
        item([("Open http://", None), ("10.0.0.5", "ip_address"), (":8080/status for the fans.", None)])
    )
    items.append(item([("Listen on [", None), ("2001:db8::1", "ip_address"), ("]:443 only.", None)]))
    items.append(
        item([("Subnet ", None), ("192.168.10.0", "ip_address"), ("/24 is the barn network.", None)])
    )
    for i, v in enumerate(NINS):
        before, after = NIN_CONTEXTS[i % len(NIN_CONTEXTS)].split("{v}")
        items.append(item([("Worker onboarding: " + before, None), (v, "national_id"), (after + ".", None)]))
    for i, v in enumerate(BVNS):
        before, after = BVN_CONTEXTS[i % len(BVN_CONTEXTS)].split("{v}")
        items.append(item([("For the loan form, " + before, None), (v, "national_id"), (after, None)]))
    for v in SSNS:
        items.append(in_context("national_id", v, rng.choice(["SSN {v}", "US contractor SSN: {v}.", "ssn {v}",
                                                              "Social security number {v} on the W-9."])))  # fmt: skip
    for v in [*AWS_KEYS, JWT, JWT2, PEM_RSA, PEM_PKCS8, PEM_OPENSSH, PEM_EC, *TOKENS]:
        items.append(in_context("secret", v))
    for v in [*BEARER_TOKENS, JWT]:
        items.append(item([("Authorization: Bearer ", None), (v, "secret"), ("\nContent-Type: json", None)]))
    for prefix, value, suffix in KEYVALUES:
        items.append(
            item([("config " + prefix, None), (value, "secret"), (suffix + " for the scale API", None)])
        )
    # Several kinds in one message, around multibyte text.
    items.append(item([("Ọ̀gbẹ́ni Adé 👨🏾‍🌾 — email ", None), ("ade.farm@gmail.com", "email"), (", phone ", None),
                       ("0803 555 0101", "phone"), (", card ", None), ("4111 1111 1111 1111", "payment_card"),
                       (", ₦180,000 paid on 2026-11-30.", None)]))  # fmt: skip
    items.append(item([("NIN ", None), ("12345678901", "national_id"), (" / BVN ", None),
                       ("22123456789", "national_id"), (" / tel ", None), ("+234 803 123 4567", "phone")]))  # fmt: skip
    items.append(item([("Server ", None), ("10.1.2.3", "ip_address"), (" key ", None),
                       ("AKIAIOSFODNN7EXAMPLE", "secret"), (" owner ", None), ("ops@farmco.ng", "email")]))  # fmt: skip
    items.append(item([("Pay ", None), (make_iban("GB", "WEST12345698765432"), "iban"), (" or card ", None),
                       ("5555-5555-5555-4444", "payment_card"), (" — invoice INV-2026-000123.", None)]))  # fmt: skip
    items.append(item([("🐔🐔🐔 ", None), ("amina.bello@gmail.com", "email"), (" 🐔 ", None),
                       ("08031234567", "phone"), (" 🥚", None)]))  # fmt: skip
    items.append(item([("Two phones: ", None), ("08031234567", "phone"), (" and ", None),
                       ("0706 555 1234", "phone"), (", 1,200 birds.", None)]))  # fmt: skip
    items.append(item([("Cards ", None), ("4111111111111111", "payment_card"), (",", None),
                       ("5105105105105100", "payment_card"), (" both declined", None)]))  # fmt: skip
    # Hard negatives in a PII context: Luhn-invalid card numbers, IBANs with a wrong check.
    for prefix, length, groups in CARD_PREFIXES[:12]:
        n = with_luhn(prefix, length)
        n = n[:-1] + str((int(n[-1]) + 1) % 10)
        assert not luhn_ok(n)
        items.append(in_context("payment_card", grouped(n, groups) if groups else n) | {"findings": []})
    for country, bban in IBAN_BBANS[:6]:
        iban = make_iban(country, bban)
        bad = iban[:2] + f"{(int(iban[2:4]) + 1) % 100:02d}" + iban[4:]
        assert not iban_ok(bad)
        items.append(in_context("iban", bad) | {"findings": []})
    for text in NEGATIVES:
        items.append({"text": text, "findings": []})
    for i, it in enumerate(items):
        it["id"] = i + 1
    return items


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    items = build()
    with out.open("w", encoding="utf-8") as f:
        for it in items:
            f.write(
                json.dumps(
                    {"id": it["id"], "text": it["text"], "findings": it["findings"]}, ensure_ascii=False
                )
            )
            f.write("\n")
    counts: dict[str, int] = {}
    for it in items:
        for fd in it["findings"]:
            counts[fd["kind"]] = counts.get(fd["kind"], 0) + 1
    print(f"{len(items)} items -> {out}; positives per kind: {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
