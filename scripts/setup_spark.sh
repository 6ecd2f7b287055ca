#!/usr/bin/env bash
# Fetch the jars delta-spark needs on Apache Spark (sde.adapters.spark), idempotently:
#   .build/spark-jars/*.jar          the jars below, straight from Maven Central
#   .build/spark-jars/.sde-stamp     the hash of the list; a run that finds it does nothing
# PySpark itself (the Spark runtime and its own ~270 jars) comes from PyPI through
# requirements.lock (the `spark` extra). No PyPI package ships Delta's jars, and Spark's
# own `--packages` would resolve them with Ivy at every session start, over the network:
# instead they are pinned here, each by its SHA-256, and checked against the SHA-512 that
# Maven Central publishes beside it. Spark sessions then only read this folder (offline).
#
# The list is delta-spark_4.2_2.13's runtime dependencies (its POM, resolved with
# `mvn dependency:tree -Dscope=runtime`, see docs/spark.md) less what pyspark already ships
# (Scala, Hadoop, Parquet, Jackson, log4j, RoaringBitmap, ...; Spark's own copies win on
# the classpath anyway). jackson-datatype-jdk8 is taken at Spark's Jackson version.
# Measured on 2 cores: about 13 MB and a few seconds once; a second run is instant.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

MAVEN="https://repo1.maven.org/maven2"
# group:artifact:version sha256 (delta-spark 4.4.0 for Spark 4.2, Scala 2.13)
JARS="
io.delta:delta-spark_4.2_2.13:4.4.0 27d4fd8b1f879535c573ed1c718177d6a27f24d3e626ba02e216369725721ead
io.delta:delta-storage:4.4.0 c46735481fa8e326b0957be02b4420cbcab4b325bb08009b7f2045a95133f1cc
io.delta:delta-kernel-api:4.4.0 ee9b5a14ac3b7efdff4d61a58478fe8eb0e5a3fbca43889dca7290795fe79a11
io.delta:delta-kernel-defaults:4.4.0 225c975199e4718b38ee5b7e6da7f19e9585024262b2cec2656b32151a856b0b
io.delta:delta-kernel-unitycatalog:4.4.0 cea22dfb4ac562b3cd27bf652697750e8336009d73fb06631363aaaad5345ffa
io.unitycatalog:unitycatalog-client:0.6.0 48257499a86b801a3e2372cec55ac226ca1c1c7eabe5c118e7302f29a1fdbc19
io.unitycatalog:unitycatalog-hadoop:0.6.0 c47b63c961c87102b9e1d63809a0915ba4c86b7652f57c8d39ca3a05b441a150
com.fasterxml.jackson.datatype:jackson-datatype-jdk8:2.21.2 e581bbf3fc5622d16b57366dd41e10fc56921fb202879de2ef487f87dd9b30e7
"

say() { printf '[setup] %s\n' "$*" >&2; }

dir="$root/.build/spark-jars"
stamp="$dir/.sde-stamp"
want="$(printf '%s' "$JARS" | sha256sum | cut -c1-16)"

jar_name() { # group:artifact:version -> artifact-version.jar
    local artifact version
    artifact="$(printf '%s' "$1" | cut -d: -f2)"
    version="$(printf '%s' "$1" | cut -d: -f3)"
    printf '%s-%s.jar' "$artifact" "$version"
}

all_present() {
    local coordinate sha
    while read -r coordinate sha; do
        [ -n "$coordinate" ] || continue
        [ -f "$dir/$(jar_name "$coordinate")" ] || return 1
    done <<<"$JARS"
}

if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && all_present; then
    exit 0
fi

command -v java >/dev/null || say "warning: no java on PATH; Spark needs Java 17 or newer to run"
command -v curl >/dev/null || { say "needs curl to fetch the Delta jars from Maven Central"; exit 1; }
mkdir -p "$dir"
rm -f "$stamp"
say "fetching the Delta jars for Spark from Maven Central (about 13 MB, once)"
keep=()
while read -r coordinate sha; do
    [ -n "$coordinate" ] || continue
    group="$(printf '%s' "$coordinate" | cut -d: -f1)"
    artifact="$(printf '%s' "$coordinate" | cut -d: -f2)"
    version="$(printf '%s' "$coordinate" | cut -d: -f3)"
    name="$(jar_name "$coordinate")"
    keep+=("$name")
    if [ -f "$dir/$name" ] && [ "$(sha256sum "$dir/$name" | cut -c1-64)" = "$sha" ]; then
        continue
    fi
    url="$MAVEN/${group//.//}/$artifact/$version/$name"
    tmp="$dir/.$name.part"
    curl -sSfL --retry 3 -m 300 -o "$tmp" "$url" || { say "could not download $url"; exit 1; }
    published="$(curl -sSfL --retry 3 -m 60 "$url.sha512" | cut -c1-128)" \
        || { say "could not download $url.sha512"; rm -f "$tmp"; exit 1; }
    if [ "$(sha512sum "$tmp" | cut -c1-128)" != "$published" ]; then
        say "$name does not match the SHA-512 Maven Central publishes: refused"
        rm -f "$tmp"
        exit 1
    fi
    if [ "$(sha256sum "$tmp" | cut -c1-64)" != "$sha" ]; then
        say "$name does not match its pinned SHA-256 in scripts/setup_spark.sh: refused"
        rm -f "$tmp"
        exit 1
    fi
    mv "$tmp" "$dir/$name"
done <<<"$JARS"

# Anything else in the folder (an older version, a partial download) would end up on
# Spark's classpath: remove it.
for path in "$dir"/* "$dir"/.*.part; do
    [ -e "$path" ] || continue
    base="$(basename "$path")"
    found=0
    for name in "${keep[@]}"; do [ "$name" = "$base" ] && found=1; done
    [ "$found" = 1 ] || rm -f "$path"
done
printf '%s' "$want" >"$stamp"
