"""Places for the synthetic population: post towns with their real postcode districts,
NHS trust and GP practice code prefixes, streets and house names, and phone numbers.

Phone numbers come only from the ranges Ofcom reserves for drama (TV, radio, fiction): they
are never allocated to a real line. Postcode districts are real and belong to the town named;
the inward part (``2AB``) is random, so a full postcode may or may not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

# Letters the Royal Mail uses in the inward code (never C, I, K, M, O, V).
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


@dataclass(frozen=True)
class Dialling:
    """A landline number range: ``area`` code, the fixed start of the subscriber number and
    how its digits are grouped when written (``0113 496 0123``: groups (3, 4))."""

    area: str
    prefix: str
    groups: tuple[int, ...]

    @property
    def length(self) -> int:
        return sum(self.groups)


# Ofcom drama ranges (www.ofcom.org.uk, "TV, radio and theatre drama numbers").
LEEDS = Dialling("0113", "4960", (3, 4))
SHEFFIELD = Dialling("0114", "4960", (3, 4))
NOTTINGHAM = Dialling("0115", "4960", (3, 4))
LEICESTER = Dialling("0116", "4960", (3, 4))
BRISTOL = Dialling("0117", "4960", (3, 4))
READING = Dialling("0118", "4960", (3, 4))
BIRMINGHAM = Dialling("0121", "4960", (3, 4))
LIVERPOOL = Dialling("0151", "4960", (3, 4))
MANCHESTER = Dialling("0161", "4960", (3, 4))
TYNESIDE = Dialling("0191", "4980", (3, 4))
LONDON = Dialling("020", "79460", (4, 4))
CARDIFF = Dialling("029", "20180", (4, 4))
NO_AREA = Dialling("01632", "960", (6,))
MOBILE = Dialling("07700", "900", (6,))


@dataclass(frozen=True)
class Town:
    name: str
    weight: float
    districts: tuple[str, ...]
    dialling: Dialling
    practice_prefixes: tuple[str, ...]
    trusts: tuple[str, ...]
    welsh: bool = False


def _d(text: str) -> tuple[str, ...]:
    return tuple(text.split())


TOWNS: tuple[Town, ...] = (
    Town(
        "London",
        95.0,
        _d(
            "E1 E2 E3 E5 E6 E7 E8 E9 E10 E11 E12 E13 E14 E15 E16 E17 N1 N4 N5 N7 N8 N15 N16 "
            "N17 N19 N22 NW1 NW2 NW3 NW5 NW6 NW9 NW10 SE1 SE4 SE5 SE6 SE8 SE13 SE15 SE18 SE22 "
            "SE27 SW2 SW4 SW8 SW9 SW11 SW12 SW16 SW17 SW18 SW19 W2 W3 W5 W9 W10 W11 W12 W14"
        ),
        LONDON,
        ("F84", "F83", "G85", "E83", "H85", "Y03", "F85", "E87"),
        ("R1H", "RJ1", "RJZ", "RRV", "RYJ", "RAL", "RJ7", "RQX"),
    ),
    Town("Croydon", 7.0, _d("CR0"), LONDON, ("H83",), ("RJ6",)),
    Town("Ilford", 5.0, _d("IG1 IG2 IG3"), LONDON, ("F86",), ("RF4",)),
    Town("Romford", 5.0, _d("RM1 RM2 RM3 RM7"), LONDON, ("F82",), ("RF4",)),
    Town("Harrow", 5.0, _d("HA1 HA2 HA3"), LONDON, ("E84",), ("R1K",)),
    Town("Wembley", 4.0, _d("HA0 HA9"), LONDON, ("E84",), ("R1K",)),
    Town("Southall", 3.0, _d("UB1 UB2"), LONDON, ("E85",), ("R1K",)),
    Town("Hounslow", 4.0, _d("TW3 TW4 TW5"), LONDON, ("E86",), ("RQM",)),
    Town("Enfield", 5.0, _d("EN1 EN2 EN3"), LONDON, ("F85",), ("RAL",)),
    Town("Bromley", 4.0, _d("BR1 BR2"), LONDON, ("G84",), ("RJZ",)),
    Town(
        "Birmingham",
        40.0,
        _d(
            "B5 B6 B8 B9 B10 B11 B12 B13 B14 B15 B16 B17 B19 B20 B21 B23 B24 B26 B27 B28 B29 "
            "B30 B31 B33 B34 B36 B38 B42 B44"
        ),
        BIRMINGHAM,
        ("M85", "Y02"),
        ("RRK", "RXK"),
    ),
    Town(
        "Manchester",
        28.0,
        _d("M4 M8 M9 M11 M12 M13 M14 M15 M16 M18 M19 M20 M21 M22 M23 M40"),
        MANCHESTER,
        ("P84",),
        ("R0A",),
    ),
    Town(
        "Leeds",
        26.0,
        _d(
            "LS2 LS4 LS5 LS6 LS7 LS8 LS9 LS10 LS11 LS12 LS13 LS14 LS15 LS16 LS17 LS18 LS19 "
            "LS25 LS26 LS27 LS28"
        ),
        LEEDS,
        ("B86",),
        ("RR8",),
    ),
    Town(
        "Bradford",
        16.0,
        _d("BD1 BD2 BD3 BD4 BD5 BD6 BD7 BD8 BD9 BD10 BD15"),
        NO_AREA,
        ("B83",),
        ("RAE",),
    ),
    Town(
        "Sheffield",
        18.0,
        _d("S2 S3 S4 S5 S6 S7 S8 S9 S10 S11 S12 S13 S14 S17 S20 S35"),
        SHEFFIELD,
        ("C88",),
        ("RHQ",),
    ),
    Town(
        "Liverpool",
        16.0,
        _d("L4 L5 L6 L7 L8 L9 L11 L12 L13 L15 L17 L18 L19 L24 L25"),
        LIVERPOOL,
        ("N82",),
        ("REM",),
    ),
    Town(
        "Bristol",
        15.0,
        _d("BS2 BS3 BS4 BS5 BS6 BS7 BS8 BS9 BS10 BS11 BS13 BS14 BS15 BS16"),
        BRISTOL,
        ("L81",),
        ("RA7", "RVJ"),
    ),
    Town(
        "Newcastle upon Tyne",
        10.0,
        _d("NE1 NE2 NE3 NE4 NE5 NE6 NE7 NE12 NE13 NE15"),
        TYNESIDE,
        ("A86",),
        ("RTD",),
    ),
    Town(
        "Nottingham", 11.0, _d("NG2 NG3 NG5 NG6 NG7 NG8 NG9 NG11"), NOTTINGHAM, ("C84",), ("RX1",)
    ),
    Town("Leicester", 11.0, _d("LE1 LE2 LE3 LE4 LE5"), LEICESTER, ("C82",), ("RWE",)),
    Town("Reading", 6.0, _d("RG1 RG2 RG4 RG5 RG6 RG30 RG31"), READING, ("K81",), ("RHW",)),
    Town("Coventry", 11.0, _d("CV1 CV2 CV3 CV4 CV5 CV6"), NO_AREA, ("M86",), ("RKB",)),
    Town(
        "Wolverhampton", 8.0, _d("WV1 WV2 WV3 WV4 WV6 WV10 WV11 WV14"), NO_AREA, ("M92",), ("RL4",)
    ),
    Town("Stoke-on-Trent", 8.0, _d("ST1 ST2 ST3 ST4 ST5 ST6"), NO_AREA, ("M83",), ("RJE",)),
    Town("Derby", 8.0, _d("DE1 DE3 DE21 DE22 DE23 DE24"), NO_AREA, ("C81",), ("RTG",)),
    Town("Luton", 6.0, _d("LU1 LU2 LU3 LU4"), NO_AREA, ("E81",), ("RC9",)),
    Town("Southampton", 8.0, _d("SO14 SO15 SO16 SO17 SO18 SO19"), NO_AREA, ("J82",), ("RHM",)),
    Town("Portsmouth", 6.0, _d("PO1 PO2 PO3 PO4 PO5 PO6"), NO_AREA, ("J81",), ("RHU",)),
    Town("Plymouth", 7.0, _d("PL1 PL2 PL3 PL4 PL5 PL6 PL7"), NO_AREA, ("L83",), ("RK9",)),
    Town("Exeter", 4.0, _d("EX1 EX2 EX4"), NO_AREA, ("L83",), ("RH8",)),
    Town("Norwich", 6.0, _d("NR1 NR2 NR3 NR4 NR5 NR6 NR7"), NO_AREA, ("D82",), ("RM1",)),
    Town("Cambridge", 5.0, _d("CB1 CB2 CB3 CB4 CB5"), NO_AREA, ("D81",), ("RGT",)),
    Town("Oxford", 5.0, _d("OX1 OX2 OX3 OX4"), NO_AREA, ("K84",), ("RTH",)),
    Town("York", 5.0, _d("YO10 YO23 YO24 YO26 YO30 YO31 YO32"), NO_AREA, ("B82",), ("RCB",)),
    Town("Hull", 7.0, _d("HU1 HU2 HU3 HU4 HU5 HU6 HU7 HU8 HU9"), NO_AREA, ("B81",), ("RWA",)),
    Town("Brighton", 6.0, _d("BN1 BN2"), NO_AREA, ("G81",), ("RYR",)),
    Town(
        "Milton Keynes",
        6.0,
        _d("MK1 MK2 MK3 MK4 MK5 MK6 MK8 MK10 MK13 MK15"),
        NO_AREA,
        ("K82",),
        ("RD8",),
    ),
    Town("Peterborough", 5.0, _d("PE1 PE2 PE3 PE4 PE7"), NO_AREA, ("D81",), ("RGN",)),
    Town("Bolton", 5.0, _d("BL1 BL2 BL3"), NO_AREA, ("P82",), ("RMC",)),
    Town("Oldham", 5.0, _d("OL1 OL4 OL8 OL9"), NO_AREA, ("P85",), ("RM3",)),
    Town("Blackburn", 4.0, _d("BB1 BB2"), NO_AREA, ("P81",), ("RXR",)),
    Town("Preston", 4.0, _d("PR1 PR2"), NO_AREA, ("P81",), ("RXN",)),
    Town("Sunderland", 5.0, _d("SR1 SR2 SR3 SR4 SR5 SR6"), TYNESIDE, ("A89",), ("R0B",)),
    Town("Middlesbrough", 4.0, _d("TS1 TS3 TS4 TS5 TS6 TS7 TS8"), NO_AREA, ("A81",), ("RTR",)),
    Town("Slough", 4.0, _d("SL1 SL2 SL3"), NO_AREA, ("K81",), ("RDU",)),
    Town("Huddersfield", 4.0, _d("HD1 HD2 HD3 HD4 HD5"), NO_AREA, ("B85",), ("RWY",)),
    Town("Wakefield", 4.0, _d("WF1 WF2"), NO_AREA, ("B87",), ("RXF",)),
    Town("Doncaster", 5.0, _d("DN1 DN2 DN4 DN5"), NO_AREA, ("C86",), ("RP5",)),
    Town("Ipswich", 4.0, _d("IP1 IP2 IP3 IP4"), NO_AREA, ("D83",), ("RDE",)),
    Town("Swindon", 4.0, _d("SN1 SN2 SN3 SN5"), NO_AREA, ("J83",), ("RN3",)),
    Town("Gloucester", 3.0, _d("GL1 GL2 GL3 GL4"), NO_AREA, ("L84",), ("RTE",)),
    Town("Carlisle", 2.0, _d("CA1 CA2 CA3"), NO_AREA, ("A82",), ("RNN",)),
    Town("Lincoln", 2.5, _d("LN1 LN2 LN5 LN6"), NO_AREA, ("C83",), ("RWD",)),
    Town("Canterbury", 2.0, _d("CT1 CT2"), NO_AREA, ("G82",), ("RVV",)),
    Town("Truro", 1.5, _d("TR1"), NO_AREA, ("L82",), ("REF",)),
    Town("Shrewsbury", 2.0, _d("SY1 SY2 SY3"), NO_AREA, ("M82",), ("RXW",)),
    Town(
        "Cardiff", 9.0, _d("CF5 CF10 CF11 CF14 CF23 CF24"), CARDIFF, ("W97",), ("7A4",), welsh=True
    ),
    Town("Swansea", 6.0, _d("SA1 SA2 SA5 SA6"), NO_AREA, ("W98",), ("7A3",), welsh=True),
    Town("Newport", 4.0, _d("NP10 NP19 NP20"), NO_AREA, ("W93",), ("7A6",), welsh=True),
)

TOWN_NAMES: tuple[str, ...] = tuple(t.name for t in TOWNS)


def _split(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(","))


STREET_STEMS: tuple[str, ...] = _split(
    "Oak, Elm, Ash, Beech, Birch, Cedar, Chestnut, Maple, Willow, Hawthorn, Holly, "
    "Laburnum, Rowan, Sycamore, Poplar, Lime, Church, Mill, Station, Park, Victoria, "
    "Albert, Queen's, King's, Princess, Windsor, Alexandra, Grosvenor, Mount Pleasant, "
    "Springfield, Highfield, Westfield, Fairfield, Green, Manor, Grange, Meadow, Orchard, "
    "Brook, Moor, Hill, School, Chapel, Vicarage, North, South, West, East, New, Cross, "
    "Bridge, Canal, Market, Castle, Abbey, Priory, Cavendish, Clarendon, Stanley, "
    "Beaconsfield, Gladstone, Nelson, Wellington, Trafalgar, Cromwell, Shakespeare, "
    "Milton, Byron, Tennyson, Wordsworth, Chaucer, Ruskin, Dickens, Coronation, Jubilee, "
    "Balmoral, Sandringham, Hamilton, Clifton, Belmont, Claremont, Ravenscroft, St John's, "
    "St Mary's, Heather, Primrose, Bluebell, Foxglove, Kingfisher, Lark, Wren, Ravensworth"
)

STREET_SUFFIXES: tuple[tuple[str, float], ...] = (
    ("Road", 30.0),
    ("Street", 20.0),
    ("Avenue", 10.0),
    ("Lane", 8.0),
    ("Close", 7.0),
    ("Crescent", 5.0),
    ("Drive", 5.0),
    ("Grove", 4.0),
    ("Terrace", 4.0),
    ("Way", 3.0),
    ("Gardens", 3.0),
    ("Place", 2.0),
    ("Court", 2.0),
    ("Walk", 1.0),
    ("Rise", 1.0),
    ("Mews", 1.0),
    ("View", 1.0),
    ("Parade", 1.0),
    ("Square", 1.0),
)

WHOLE_STREETS: tuple[str, ...] = (
    "High Street",
    "The Green",
    "The Crescent",
    "The Avenue",
    "The Drive",
    "Front Street",
    "Back Lane",
    "Long Lane",
)

WELSH_STREETS: tuple[str, ...] = (
    "Heol y Coed",
    "Heol Isaf",
    "Heol y Nant",
    "Ffordd yr Eglwys",
    "Stryd y Bont",
    "Heol Llanishen Fach",
    "Lôn y Felin",
    "Ffordd Penrhyn",
)

HOUSE_NAMES: tuple[str, ...] = (
    "Rose Cottage",
    "Ivy Cottage",
    "The Old Rectory",
    "The Coach House",
    "Orchard House",
    "The Laurels",
    "Hillside",
    "Woodlands",
    "Fernlea",
    "Meadow View",
    "The Old Forge",
    "Brook House",
    "Holly Lodge",
    "Sunnyside",
    "The Willows",
    "Greenacres",
    "Ty Gwyn",
    "Bryn Awel",
)

BLOCK_NAMES: tuple[str, ...] = (
    "Maple Court",
    "Victoria House",
    "Riverside Apartments",
    "Priory Court",
    "Jubilee Heights",
    "Canal Wharf",
    "St James House",
    "Mill Lofts",
    "Kingfisher Court",
    "Alexandra Mansions",
    "Wellington Point",
    "The Maltings",
)

EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net")
