# METADATA
# title: Acceptance of a dataset spec for ingest
# description: |
#   May ingest read this provider file with this dataset spec? Safe data: every column
#   the file sends is classified by the spec (and every classified column is sent),
#   every column has a known role, the NHS number is the one identifier, no identifying
#   column is kept as it is, quasi-identifiers are generalised, free text is cleared of
#   the patient's known identifiers (names included), and the spec says where the data
#   comes from. Asked before any row is read. The input is built by
#   sde.domain.policy.make_ingest_input; see docs/policies.md.
#   Undefined means deny: allow needs every positive fact below and no deny reason,
#   so a missing or malformed input field never allows.
package sde.ingest

# METADATA
# title: Roles a column may have
roles := {"identifier", "quasi_identifier", "free_text", "keep", "drop"}

# METADATA
# title: Origins a dataset may have
origins := {"gp", "hospital", "registry", "opt_out"}

# METADATA
# title: Generalisations of a quasi-identifier
generalisations := {"year", "month", "postcode_district"}

# METADATA
# title: Kinds of identifying data a column may be tagged with (pii)
pii_kinds := {
	"nhs_number", "person", "date", "address", "location",
	"postcode", "phone", "email", "identifier",
}

# METADATA
# title: Allowed
# description: No deny reason, and every positive fact holds.
default allow := false

allow if {
	count(deny) == 0
	spec_named
	origin_known
	has_columns
	header_given
	every_column_classified
	roles_known
	one_nhs_number_identifier
	no_identifying_column_kept
	pii_kinds_known
	quasi_identifiers_generalised
	known_from_specs_known
	free_text_cleared
}

# --- Normalised parts of the input (a part of the wrong type becomes empty) --------

spec := input.spec if {
	is_object(input.spec)
} else := {}

file := input.file if {
	is_object(input.file)
} else := {}

columns := spec.columns if {
	is_array(spec.columns)
} else := []

known_from := spec.known_from if {
	is_array(spec.known_from)
} else := []

header := file.header if {
	is_array(file.header)
} else := []

# The dataset's name for a message.
dataset := spec.name if {
	is_id(spec.name)
} else := "(unnamed)"

# Names the spec classifies.
spec_names contains name if {
	some column in columns
	name := field(column, "name")
	is_string(name)
}

header_names contains name if {
	some name in header
}

# METADATA
# title: Identifier columns
# description: The columns with role identifier (the NHS number that becomes pid).
identifiers := [column |
	some column in columns
	field(column, "role") == "identifier"
]

# METADATA
# title: Known identifier kinds
# description: |
#   The kinds of identifier free text is cleared of: the pii tags of the spec's own
#   columns and of the columns of its known_from datasets.
known_kinds contains kind if {
	some column in columns
	kind := field(column, "pii")
	is_string(kind)
}

known_kinds contains kind if {
	some ref in known_from
	kinds := field(ref, "pii")
	is_array(kinds)
	some kind in kinds
	is_string(kind)
}

free_text_columns := [column |
	some column in columns
	field(column, "role") == "free_text"
]

has_free_text if count(free_text_columns) > 0

# Something besides the NHS number to clear free text of: a known_from dataset, or a
# column of the spec's own tagged with a kind of identifier other than the NHS number.
free_text_has_sources if count(known_from) > 0

free_text_has_sources if count(known_kinds - {"nhs_number"}) > 0

# --- Positive facts ----------------------------------------------------------------

spec_named if is_id(spec.name)

origin_known if spec.origin in origins

has_columns if count(columns) > 0

header_given if count(header) > 0

# METADATA
# title: Every column classified
# description: The file's header and the spec's columns are the same names, each once.
every_column_classified if {
	header_given
	count(unclassified) == 0
	count(missing) == 0
	count(header) == count(header_names)
	count(columns) == count(spec_names)
	every column in columns {
		is_string(field(column, "name"))
	}
}

roles_known if {
	every column in columns {
		role_known(column)
	}
}

one_nhs_number_identifier if {
	count(identifiers) == 1
	every column in identifiers {
		field(column, "type") == "nhs_number"
	}
}

no_identifying_column_kept if {
	every column in columns {
		kept_safely(column)
	}
}

pii_kinds_known if {
	every column in columns {
		pii_kind_known(column)
	}
}

quasi_identifiers_generalised if {
	every column in columns {
		generalised_if_quasi(column)
	}
}

known_from_specs_known if {
	every ref in known_from {
		ref_known(ref)
	}
}

# METADATA
# title: Free text cleared
# description: |
#   No free text, or free text with known identifiers to clear it of, the patient's
#   names among them.
free_text_cleared if not has_free_text

free_text_cleared if {
	has_free_text
	free_text_has_sources
	"person" in known_kinds
}

# Header columns the spec does not classify, and spec columns the file does not send.
unclassified contains name if {
	some name in header
	not name in spec_names
}

missing contains name if {
	some name in spec_names
	not name in header_names
}

# --- Deny reasons ------------------------------------------------------------------

# METADATA
# title: No dataset spec
# description: The decision names no dataset spec.
# custom:
#   id: ingest.no_spec
deny contains "the dataset spec is not known (it has no name)" if not spec_named

# METADATA
# title: No origin
# description: |
#   A dataset spec says where its data comes from: a GP practice (gp), a hospital, a
#   registry or an opt-out register (opt_out). Extracts apply type 1 opt-outs by origin.
# custom:
#   id: ingest.origin
deny contains msg if {
	not origin_known
	msg := sprintf(
		"dataset spec %s has origin %s; it must be one of gp, hospital, registry, opt_out",
		[dataset, text_field(spec, "origin")],
	)
}

# METADATA
# title: No columns
# description: A dataset spec classifies the columns of its files.
# custom:
#   id: ingest.no_columns
deny contains msg if {
	not has_columns
	msg := sprintf("dataset spec %s classifies no columns", [dataset])
}

# METADATA
# title: No header
# description: A provider file starts with a header row naming its columns.
# custom:
#   id: ingest.no_header
deny contains "the file has no header naming its columns" if not header_given

# METADATA
# title: Column not classified
# description: |
#   Every column a provider sends must be classified by the dataset spec, with a role
#   (drop if it is not needed), so nothing reaches the linked zone unexamined.
# custom:
#   id: ingest.unclassified_column
deny contains msg if {
	some name in unclassified
	msg := sprintf(
		"column %s of the file is not classified by dataset spec %s; add it with a role (drop if not needed)",
		[label(name), dataset],
	)
}

# METADATA
# title: Column missing from the file
# description: Every column the dataset spec classifies must be in the file.
# custom:
#   id: ingest.missing_column
deny contains msg if {
	some name in missing
	msg := sprintf("column %s of dataset spec %s is missing from the file", [name, dataset])
}

# METADATA
# title: Column repeated in the file
# description: A column appears once in the file's header.
# custom:
#   id: ingest.repeated_header_column
deny contains msg if {
	some name in header_names
	count([n | some n in header; n == name]) > 1
	msg := sprintf("the file's header repeats column %s", [label(name)])
}

# METADATA
# title: Column classified twice
# description: A dataset spec classifies each column once, with one role.
# custom:
#   id: ingest.repeated_spec_column
deny contains msg if {
	some name in spec_names
	count([c | some c in columns; field(c, "name") == name]) > 1
	msg := sprintf("dataset spec %s classifies column %s more than once", [dataset, name])
}

# METADATA
# title: Column without a name
# description: Every column of a dataset spec has a name.
# custom:
#   id: ingest.unnamed_column
deny contains msg if {
	some column in columns
	not is_string(field(column, "name"))
	msg := sprintf("dataset spec %s has a column without a name", [dataset])
}

# METADATA
# title: Unknown role
# description: |
#   Every column has one of the roles identifier, quasi_identifier, free_text, keep or
#   drop: it says what ingest does with the column.
# custom:
#   id: ingest.unknown_role
deny contains msg if {
	some column in columns
	not role_known(column)
	msg := sprintf(
		"column %s of dataset spec %s has role %s; it must be one of identifier, quasi_identifier, free_text, keep, drop",
		[text_field(column, "name"), dataset, text_field(column, "role")],
	)
}

# METADATA
# title: Not exactly one identifier
# description: |
#   Exactly one column is the identifier: the NHS number, replaced by the linkage
#   pseudonym pid so datasets link.
# custom:
#   id: ingest.identifier_count
deny contains msg if {
	count(identifiers) != 1
	msg := sprintf(
		"dataset spec %s has %d identifier columns; exactly one, the NHS number, is needed",
		[dataset, count(identifiers)],
	)
}

# METADATA
# title: Identifier not an NHS number
# description: The identifier column has type nhs_number (validated by Modulus 11 and pseudonymised).
# custom:
#   id: ingest.identifier_type
deny contains msg if {
	some column in identifiers
	field(column, "type") != "nhs_number"
	msg := sprintf(
		"the identifier column %s of dataset spec %s has type %s, not nhs_number",
		[text_field(column, "name"), dataset, text_field(column, "type")],
	)
}

# METADATA
# title: Identifying data kept
# description: |
#   A column tagged with a kind of identifying data (pii), or holding NHS numbers, is
#   never kept as it is: it is dropped, generalised (quasi_identifier) or de-identified
#   (free_text).
# custom:
#   id: ingest.pii_kept
deny contains msg if {
	some column in columns
	field(column, "role") == "keep"
	kind := identifying_kind(column)
	msg := sprintf(
		"column %s of dataset spec %s holds identifying data (%s) and has role keep; drop it, generalise it (quasi_identifier) or de-identify it (free_text)",
		[text_field(column, "name"), dataset, kind],
	)
}

# METADATA
# title: Unknown kind of identifying data
# description: |
#   A pii tag is one of nhs_number, person, date, address, location, postcode, phone,
#   email or identifier: free text is cleared of known identifiers by kind.
# custom:
#   id: ingest.pii_kind
deny contains msg if {
	some column in columns
	not pii_kind_known(column)
	msg := sprintf(
		"column %s of dataset spec %s has pii tag %s, which is not one of address, date, email, identifier, location, nhs_number, person, phone, postcode",
		[text_field(column, "name"), dataset, text_field(column, "pii")],
	)
}

# METADATA
# title: Quasi-identifier not generalised
# description: |
#   A quasi-identifier (date of birth, postcode) is kept only generalised: to its year,
#   its month, or the postcode's district.
# custom:
#   id: ingest.generalisation
deny contains msg if {
	some column in columns
	not generalised_if_quasi(column)
	msg := sprintf(
		"quasi_identifier column %s of dataset spec %s needs a generalisation: year, month or postcode_district",
		[text_field(column, "name"), dataset],
	)
}

# METADATA
# title: known_from dataset without a spec
# description: A dataset named in known_from has a dataset spec, so its identifying columns are known.
# custom:
#   id: ingest.known_from_unknown
deny contains msg if {
	some ref in known_from
	not ref_known(ref)
	msg := sprintf(
		"dataset spec %s clears its free text with identifiers from dataset %s, which has no dataset spec",
		[dataset, text_field(ref, "dataset")],
	)
}

# METADATA
# title: Free text without known identifiers
# description: |
#   Free text is cleared of the patient's own identifiers, found by value. A dataset
#   with free text names the datasets those come from (known_from, such as patients)
#   or tags its own identifying columns with pii; the NHS number alone is not enough.
# custom:
#   id: ingest.free_text_known
deny contains msg if {
	has_free_text
	not free_text_has_sources
	msg := sprintf(
		"dataset spec %s has free text but no known identifiers to clear it of: name the datasets they come from in known_from (such as patients) or tag its identifying columns with pii",
		[dataset],
	)
}

# METADATA
# title: Free text without known names
# description: |
#   NHS numbers, dates, phone numbers, emails and postcodes have patterns; names are
#   found from context and a word list, with known limits. The patient's own names are
#   removed in any layout when known by value: a column tagged pii person in the spec
#   or in a known_from dataset.
# custom:
#   id: ingest.free_text_names
deny contains msg if {
	has_free_text
	free_text_has_sources
	not "person" in known_kinds
	msg := sprintf(
		"dataset spec %s has free text but no known names to clear it of: no column of it or of its known_from datasets is tagged pii person",
		[dataset],
	)
}

# --- Functions ---------------------------------------------------------------------

role_known(column) if field(column, "role") in roles

# A column's kind of identifying data: its pii tag, or nhs_number for a column of
# that type; undefined when it holds none.
identifying_kind(column) := label(field(column, "pii")) if {
	field(column, "pii") != null
} else := "nhs_number" if {
	field(column, "type") == "nhs_number"
}

# METADATA
# title: Kept safely
# description: Not kept as it is, or kept with no pii tag and not of type nhs_number.
kept_safely(column) if field(column, "role") != "keep"

kept_safely(column) if {
	field(column, "role") == "keep"
	field(column, "pii") == null
	field(column, "type") != "nhs_number"
}

pii_kind_known(column) if field(column, "pii") == null

pii_kind_known(column) if field(column, "pii") in pii_kinds

generalised_if_quasi(column) if field(column, "role") != "quasi_identifier"

generalised_if_quasi(column) if {
	field(column, "role") == "quasi_identifier"
	field(column, "generalise") in generalisations
}

ref_known(ref) if {
	is_id(field(ref, "dataset"))
	is_array(field(ref, "pii"))
}

# METADATA
# title: Field
# description: A field of an object, null when missing or when the value is not an object.
field(obj, key) := object.get(obj, key, null) if {
	is_object(obj)
} else := null

is_id(x) if {
	is_string(x)
	x != ""
}

# METADATA
# title: Label
# description: A value as text for a message (sprintf of non-text differs between engines).
label(x) := x if {
	is_string(x)
} else := "(missing or not text)"

# METADATA
# title: Text field
# description: A field of an object as text for a message, whatever the object holds.
text_field(obj, key) := label(field(obj, key))
