# METADATA
# title: Tests of sde.ingest
# description: Run by the real OPA (opa test policies -v); never loaded into regopy.
package sde.ingest_test

import data.sde.ingest

column(name, role, type, pii, generalise) := {
	"name": name,
	"role": role,
	"type": type,
	"pii": pii,
	"generalise": generalise,
}

identifier := column("nhs_number", "identifier", "nhs_number", "nhs_number", null)

letter_date := column("letter_date", "keep", "date", null, null)

letter_text := column("letter_text", "free_text", "string", null, null)

patients_kinds := ["address", "date", "email", "location", "nhs_number", "person", "phone", "postcode"]

# The shipped clinic_letters spec, as sde.services.ingest.ingest_policy_input builds it.
letters := {
	"spec": {
		"name": "clinic_letters",
		"origin": "hospital",
		"columns": [
			identifier,
			letter_date,
			column("specialty", "keep", "string", null, null),
			letter_text,
		],
		"known_from": [{"dataset": "patients", "pii": patients_kinds}],
	},
	"file": {"header": ["nhs_number", "letter_date", "specialty", "letter_text"]},
}

patients_columns := [
	identifier,
	column("given_name", "drop", "string", "person", null),
	column("sex", "keep", "string", null, null),
	column("date_of_birth", "quasi_identifier", "date", "date", "year"),
	column("postcode", "quasi_identifier", "string", "postcode", "postcode_district"),
	column("phone", "drop", "string", "phone", null),
]

# The shipped patients spec (abridged): no free text, no known_from.
patients := {
	"spec": {
		"name": "patients",
		"origin": "gp",
		"columns": patients_columns,
		"known_from": [],
	},
	"file": {"header": [c.name | some c in patients_columns]},
}

# patients with these columns, the header following them.
patients_with(columns) := {
	"spec": object.union(patients.spec, {"columns": columns}),
	"file": {"header": [c.name | some c in columns]},
}

with_spec(doc, changes) := object.union(doc, {"spec": changes})

with_header(doc, header) := object.union(doc, {"file": {"header": header}})

refused_with(doc, reason) if {
	not ingest.allow with input as doc
	reason in ingest.deny with input as doc
}

# --- allowed ---------------------------------------------------------------------

test_letters_allowed if {
	ingest.allow with input as letters
	count(ingest.deny) == 0 with input as letters
}

test_patients_allowed if {
	ingest.allow with input as patients
	count(ingest.deny) == 0 with input as patients
}

test_every_origin_allowed if {
	every origin in ["gp", "hospital", "registry", "opt_out"] {
		ingest.allow with input as with_spec(patients, {"origin": origin})
	}
}

test_every_generalisation_allowed if {
	every generalise in ["year", "month"] {
		columns := [identifier, column("date_of_birth", "quasi_identifier", "date", "date", generalise)]
		ingest.allow with input as patients_with(columns)
	}
}

test_header_order_does_not_matter if {
	ingest.allow with input as with_header(letters, ["letter_text", "specialty", "nhs_number", "letter_date"])
}

test_free_text_cleared_with_own_name_columns if {
	columns := [identifier, column("patient_name", "drop", "string", "person", null), letter_text]
	doc := with_header(
		with_spec(letters, {"columns": columns, "known_from": []}),
		["nhs_number", "patient_name", "letter_text"],
	)
	ingest.allow with input as doc
}

test_identifying_columns_dropped_or_generalised_allowed if {
	every role_generalise in [["drop", null], ["quasi_identifier", "year"]] {
		columns := [
			identifier,
			column("born", role_generalise[0], "date", "date", role_generalise[1]),
		]
		ingest.allow with input as patients_with(columns)
	}
}

# --- refused: the spec and the file ------------------------------------------------

test_empty_input_refused if {
	not ingest.allow with input as {}
	"the dataset spec is not known (it has no name)" in ingest.deny with input as {}
	"the file has no header naming its columns" in ingest.deny with input as {}
	"dataset spec (unnamed) classifies no columns" in ingest.deny with input as {}
	"dataset spec (unnamed) has 0 identifier columns; exactly one, the NHS number, is needed" in ingest.deny with input as {}
}

test_unnamed_spec_refused if {
	reason := "the dataset spec is not known (it has no name)"
	refused_with(with_spec(letters, {"name": ""}), reason)
	refused_with(with_spec(letters, {"name": 7}), reason)
	refused_with(json.remove(letters, ["spec/name"]), reason)
}

test_origin_refused if {
	refused_with(
		with_spec(letters, {"origin": "pharmacy"}),
		"dataset spec clinic_letters has origin pharmacy; it must be one of gp, hospital, registry, opt_out",
	)
	reason := "dataset spec clinic_letters has origin (missing or not text); it must be one of gp, hospital, registry, opt_out"
	refused_with(json.remove(letters, ["spec/origin"]), reason)
	refused_with(with_spec(letters, {"origin": null}), reason)
	refused_with(with_spec(letters, {"origin": ["gp"]}), reason)
}

test_no_columns_refused if {
	refused_with(with_spec(letters, {"columns": []}), "dataset spec clinic_letters classifies no columns")
	refused_with(with_spec(letters, {"columns": "nhs_number"}), "dataset spec clinic_letters classifies no columns")
}

test_no_header_refused if {
	reason := "the file has no header naming its columns"
	refused_with(with_header(letters, []), reason)
	refused_with(with_header(letters, "nhs_number,letter_date"), reason)
	refused_with(json.remove(letters, ["file"]), reason)
}

test_unclassified_header_column_refused if {
	# only the last column of the header is not classified
	refused_with(
		with_header(letters, ["nhs_number", "letter_date", "specialty", "letter_text", "coroner"]),
		"column coroner of the file is not classified by dataset spec clinic_letters; add it with a role (drop if not needed)",
	)
	refused_with(
		with_header(letters, ["nhs_number", "letter_date", "specialty", "letter_text", 3]),
		"column (missing or not text) of the file is not classified by dataset spec clinic_letters; add it with a role (drop if not needed)",
	)
}

test_spec_column_missing_from_the_file_refused if {
	refused_with(
		with_header(letters, ["nhs_number", "letter_date", "specialty"]),
		"column letter_text of dataset spec clinic_letters is missing from the file",
	)
}

test_repeated_columns_refused if {
	refused_with(
		with_header(letters, ["nhs_number", "letter_date", "specialty", "letter_text", "specialty"]),
		"the file's header repeats column specialty",
	)
	columns := array.concat(letters.spec.columns, [column("specialty", "drop", "string", null, null)])
	refused_with(
		with_spec(letters, {"columns": columns}),
		"dataset spec clinic_letters classifies column specialty more than once",
	)
}

test_unnamed_column_refused if {
	columns := array.concat(letters.spec.columns, [json.remove(letter_date, ["name"])])
	refused_with(with_spec(letters, {"columns": columns}), "dataset spec clinic_letters has a column without a name")
}

# --- refused: roles ------------------------------------------------------------------

test_unknown_role_refused if {
	every role in ["keep_raw", "", "pseudonymise"] {
		columns := [identifier, column("sex", role, "string", null, null)]
		refused_with(
			patients_with(columns),
			sprintf("column sex of dataset spec patients has role %s; it must be one of identifier, quasi_identifier, free_text, keep, drop", [role]),
		)
	}
	columns := [identifier, json.remove(column("sex", "keep", "string", null, null), ["role"])]
	refused_with(
		patients_with(columns),
		"column sex of dataset spec patients has role (missing or not text); it must be one of identifier, quasi_identifier, free_text, keep, drop",
	)
}

test_a_column_that_is_not_a_mapping_refused if {
	doc := with_spec(letters, {"columns": array.concat(letters.spec.columns, ["coroner"])})
	refused_with(
		doc,
		"column (missing or not text) of dataset spec clinic_letters has role (missing or not text); it must be one of identifier, quasi_identifier, free_text, keep, drop",
	)
}

test_no_identifier_refused if {
	columns := [column("sex", "keep", "string", null, null)]
	refused_with(
		patients_with(columns),
		"dataset spec patients has 0 identifier columns; exactly one, the NHS number, is needed",
	)
}

test_two_identifiers_refused if {
	columns := array.concat(patients_columns, [column("old_nhs_number", "identifier", "nhs_number", "nhs_number", null)])
	refused_with(
		patients_with(columns),
		"dataset spec patients has 2 identifier columns; exactly one, the NHS number, is needed",
	)
}

test_identifier_not_an_nhs_number_refused if {
	columns := [column("hospital_number", "identifier", "string", "identifier", null)]
	refused_with(
		patients_with(columns),
		"the identifier column hospital_number of dataset spec patients has type string, not nhs_number",
	)
}

test_identifying_column_kept_refused if {
	every kind in ["person", "address", "location", "phone", "email", "identifier", "date", "postcode", "nhs_number"] {
		# only the last column is kept with a pii tag
		columns := array.concat(patients_columns, [column("leak", "keep", "string", kind, null)])
		refused_with(
			patients_with(columns),
			sprintf("column leak of dataset spec patients holds identifying data (%s) and has role keep; drop it, generalise it (quasi_identifier) or de-identify it (free_text)", [kind]),
		)
	}
}

test_nhs_numbers_kept_without_a_tag_refused if {
	columns := array.concat(patients_columns, [column("other_nhs_number", "keep", "nhs_number", null, null)])
	refused_with(
		patients_with(columns),
		"column other_nhs_number of dataset spec patients holds identifying data (nhs_number) and has role keep; drop it, generalise it (quasi_identifier) or de-identify it (free_text)",
	)
}

test_unknown_pii_kind_refused if {
	columns := array.concat(patients_columns, [column("nino", "drop", "string", "national_insurance", null)])
	refused_with(
		patients_with(columns),
		"column nino of dataset spec patients has pii tag national_insurance, which is not one of address, date, email, identifier, location, nhs_number, person, phone, postcode",
	)
}

test_quasi_identifier_without_generalisation_refused if {
	every generalise in [null, "day", "decade", 1] {
		columns := [identifier, column("date_of_birth", "quasi_identifier", "date", "date", generalise)]
		refused_with(
			patients_with(columns),
			"quasi_identifier column date_of_birth of dataset spec patients needs a generalisation: year, month or postcode_district",
		)
	}
	columns := [identifier, json.remove(column("date_of_birth", "quasi_identifier", "date", "date", null), ["generalise"])]
	refused_with(
		patients_with(columns),
		"quasi_identifier column date_of_birth of dataset spec patients needs a generalisation: year, month or postcode_district",
	)
}

# --- refused: free text --------------------------------------------------------------

test_free_text_without_known_identifiers_refused if {
	reason := "dataset spec clinic_letters has free text but no known identifiers to clear it of: name the datasets they come from in known_from (such as patients) or tag its identifying columns with pii"
	refused_with(with_spec(letters, {"known_from": []}), reason)
	refused_with(json.remove(letters, ["spec/known_from"]), reason)
	refused_with(with_spec(letters, {"known_from": "patients"}), reason)
}

test_free_text_without_known_names_refused if {
	reason := "dataset spec clinic_letters has free text but no known names to clear it of: no column of it or of its known_from datasets is tagged pii person"
	refused_with(with_spec(letters, {"known_from": [{"dataset": "deaths", "pii": ["nhs_number"]}]}), reason)
	columns := [identifier, column("clinic_phone", "drop", "string", "phone", null), letter_text]
	doc := with_header(
		with_spec(letters, {"columns": columns, "known_from": []}),
		["nhs_number", "clinic_phone", "letter_text"],
	)
	refused_with(doc, reason)
}

test_known_from_dataset_without_a_spec_refused if {
	refs := [{"dataset": "patients", "pii": patients_kinds}, {"dataset": "pharmacy", "pii": null}]
	refused_with(
		with_spec(letters, {"known_from": refs}),
		"dataset spec clinic_letters clears its free text with identifiers from dataset pharmacy, which has no dataset spec",
	)
}

# --- both layers -------------------------------------------------------------------

test_positive_facts_hold_for_base if {
	ingest.spec_named with input as letters
	ingest.origin_known with input as letters
	ingest.has_columns with input as letters
	ingest.header_given with input as letters
	ingest.every_column_classified with input as letters
	ingest.roles_known with input as letters
	ingest.one_nhs_number_identifier with input as letters
	ingest.no_identifying_column_kept with input as letters
	ingest.pii_kinds_known with input as letters
	ingest.quasi_identifiers_generalised with input as patients
	ingest.known_from_specs_known with input as letters
	ingest.free_text_cleared with input as letters
}

test_positive_facts_fail_on_their_refusal if {
	not ingest.spec_named with input as with_spec(letters, {"name": ""})
	not ingest.origin_known with input as with_spec(letters, {"origin": "pharmacy"})
	not ingest.has_columns with input as with_spec(letters, {"columns": []})
	not ingest.header_given with input as with_header(letters, [])
	not ingest.every_column_classified with input as with_header(letters, ["nhs_number", "letter_date", "specialty"])
	not ingest.every_column_classified with input as with_header(letters, ["nhs_number", "letter_date", "specialty", "letter_text", "x"])
	not ingest.every_column_classified with input as with_header(letters, ["nhs_number", "letter_date", "specialty", "letter_text", "specialty"])
	not ingest.roles_known with input as patients_with([identifier, column("sex", "keep_raw", "string", null, null)])
	not ingest.one_nhs_number_identifier with input as patients_with([column("nhs_number", "identifier", "string", null, null)])
	not ingest.one_nhs_number_identifier with input as patients_with([column("sex", "keep", "string", null, null)])
	not ingest.no_identifying_column_kept with input as patients_with([identifier, column("name", "keep", "string", "person", null)])
	not ingest.pii_kinds_known with input as patients_with([identifier, column("nino", "drop", "string", "nino", null)])
	not ingest.quasi_identifiers_generalised with input as patients_with([identifier, column("dob", "quasi_identifier", "date", "date", "day")])
	not ingest.known_from_specs_known with input as with_spec(letters, {"known_from": [{"dataset": "pharmacy", "pii": null}]})
	not ingest.free_text_cleared with input as with_spec(letters, {"known_from": []})
	not ingest.free_text_cleared with input as with_spec(letters, {"known_from": [{"dataset": "deaths", "pii": ["nhs_number"]}]})
}
