#!/usr/bin/env bash
# Fetch the jars delta-spark (and S3A, for a lake on S3) need on Apache Spark
# (sde.adapters.spark), idempotently:
#   .build/spark-jars/*.jar          the jars below, straight from Maven Central
#   .build/spark-jars/.sde-stamp     the hash of the list; a run that finds it does nothing
# PySpark itself (the Spark runtime and its own ~270 jars) comes from PyPI through
# requirements.lock (the `spark` extra). No PyPI package ships Delta's jars, and Spark's
# own `--packages` would resolve them with Ivy at every session start, over the network:
# instead they are pinned here, each by its SHA-256, and checked against the SHA-512 that
# Maven Central publishes beside it (its SHA-256 or SHA-1 where it publishes no SHA-512).
# Spark sessions then only read this folder (offline).
#
# The list is delta-spark_4.2_2.13's runtime dependencies (its POM, resolved with
# `mvn dependency:tree -Dscope=runtime`, see docs/spark.md) less what pyspark already ships
# (Scala, Hadoop, Parquet, Jackson, log4j, RoaringBitmap, ...; Spark's own copies win on
# the classpath anyway). jackson-datatype-jdk8 is taken at Spark's Jackson version.
#
# S3_JARS is Hadoop's S3A connector for a lake on S3 (s3a://): hadoop-aws at PySpark's
# Hadoop version (3.5.0) and the AWS SDK v2 modules it needs, at the version
# hadoop-project 3.5.0 names (2.35.4), one jar per module: not the SDK's `bundle` jar
# (686 MB). Resolved with `mvn dependency:tree -Dscope=runtime` of hadoop-aws (bundle
# excluded) + s3, s3-transfer-manager and sts (web identity), less what pyspark ships
# (httpclient, httpcore, commons-codec, Netty, slf4j); wildfly-openssl (S3A's optional
# OpenSSL binding) is left out: S3A's default TLS mode is Java's own (docs/spark.md).
# Measured on 2 cores: about 26 MB (13 MB Delta, 13 MB S3A) and a few seconds once; a
# second run is instant.
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
# group:artifact:version sha256 (Hadoop S3A 3.5.0 with AWS SDK v2 2.35.4)
S3_JARS="
org.apache.hadoop:hadoop-aws:3.5.0 66bd9eefb938b1a1657487324b63c13df2d8b17164a1dd24e0ef37b905bc5baa
software.amazon.s3.analyticsaccelerator:analyticsaccelerator-s3:1.3.1 4959a9747cbb479c73c3ffbcd479bee5b014f8b2880994585a8693fb9d24675e
software.amazon.awssdk:annotations:2.35.4 6f36bd87155d1dd85d6efbdd29e532e3759a022211feb71affebee1aa34f04b8
software.amazon.awssdk:apache-client:2.35.4 6eade21b482724ed0a4613eaa95d20e47e7a81304bd28538ac427fece94a7740
software.amazon.awssdk:arns:2.35.4 c63cc29f76a8527e9e10b621703163df541dc5cb315508dc2898518602c75380
software.amazon.awssdk:auth:2.35.4 6b601323004833fb4a857ffc95db4795e0e6320eb93e64b1246c655c9ff04994
software.amazon.awssdk:aws-core:2.35.4 fdb5fc8f1a48d97fa7d04d3460fb42f6973c7b1bbe1b9d317871ef0162bcb623
software.amazon.awssdk:aws-query-protocol:2.35.4 9b4cf9b78977cc9f5b4ceae9c435dedbde6a055a0f8d9e053eaca945715e2a9f
software.amazon.awssdk:aws-xml-protocol:2.35.4 4f59176da2522c357b1993e4a890fde529f12f365795ef86269bde4a3984cd0d
software.amazon.awssdk:checksums-spi:2.35.4 88b5af85ac2d3c862be8856be4e683ab31932e4a5a3c1c45af864d2671ac7cec
software.amazon.awssdk:checksums:2.35.4 94464af4374d08ecf33ca06ed4d03e1615529e547726e26b56abacefbeee7948
software.amazon.awssdk:crt-core:2.35.4 2c6aaa17bf9ccbb9d962dded4351e73decb197e3c5519970e0dae17e05d3df62
software.amazon.awssdk:endpoints-spi:2.35.4 ef02441bda916959b8341290b49c68cc35538e1ad6f8629b75d8334dc6653e00
software.amazon.awssdk:http-auth-aws-eventstream:2.35.4 709107552f302be3fa9e05969a3779f5c0f07fb809e6fa1fa571a6f0c61326dd
software.amazon.awssdk:http-auth-aws:2.35.4 c4acb92fdec90bfd9b67bfab8e41b69cd152c03cacc10281a8ab464791856e01
software.amazon.awssdk:http-auth-spi:2.35.4 4495463406bb98eb136f2c3f3604ed5f08ec9974ebc3f34f2121b20679f61d5c
software.amazon.awssdk:http-auth:2.35.4 3ec933a06e751a05e195eb3589209e23c44e1897263b6fcae34ef4cc63cd4491
software.amazon.awssdk:http-client-spi:2.35.4 728be89b2a07b595edb0adee3a2cbbbdd4cb1f4caddde0d08c3979fe2620dedb
software.amazon.awssdk:identity-spi:2.35.4 188d73db7d4e2361654bc3c5a1b3eaeb445d0500fb012cc46c5d67975adf97bf
software.amazon.awssdk:json-utils:2.35.4 80d67a6bb3e7eb49c7d4b6e4ba4c1463ed7da0192b795158328602dc131c5ecc
software.amazon.awssdk:metrics-spi:2.35.4 c2a4ee90a21081317e2e6eba0c414d05d3d518aed2f86b1c1710a7367b450487
software.amazon.awssdk:netty-nio-client:2.35.4 b82f8b33e5c85273a47da45ede884d7ccb31c9c2f69e6910a76c5c48fa1275dc
software.amazon.awssdk:profiles:2.35.4 0f4ef7ca72ccd80dd49ebeaf7f3ce60a7d7a00da59a91aeeae6e91052bbacbd8
software.amazon.awssdk:protocol-core:2.35.4 f2532eca6ba2142fe4821d5decb03c83a3e15dc8bfae2240e7f2efa75f9868b5
software.amazon.awssdk:regions:2.35.4 77eae87b34ce96ecdf916a9bc06684dbeafcb6d38ef0513285fa5d5d6d41f5ca
software.amazon.awssdk:retries-spi:2.35.4 668638751d059c527ddd41ffa4dcebe36a7c14860ed56776df09b861c14dc7dd
software.amazon.awssdk:retries:2.35.4 f99fb2f8c66d7e859955b3542d3af8f9de8f23a21d5e3250f0f2c5f18487e469
software.amazon.awssdk:s3-transfer-manager:2.35.4 0eec78870b3d0abc509a847072cf963cb2ae6e360dc6161a9449b3398c470476
software.amazon.awssdk:s3:2.35.4 f23532c5223be9b0bfec0d72837ed09ed34dbdf8022818ba145b20076a78b4bc
software.amazon.awssdk:sdk-core:2.35.4 fa559a4ce598852f3519c8f3b36250f583b0858a7611eedc4a81997778c617f4
software.amazon.awssdk:sts:2.35.4 8d0f7816d3f96e3f00249f5d054d926e939a104bcf9ef57676ee0b16c59684d2
software.amazon.awssdk:third-party-jackson-core:2.35.4 32f4252c6c2df8f3a4aff885e6dc77024ad6b4cb48455d07b461ec30c41643ea
software.amazon.awssdk:utils-lite:2.35.4 e004806def5e22ec98edc48a133ff3317166255e1ba29d93d129e9fdfa64a7be
software.amazon.awssdk:utils:2.35.4 642aeef536a071668f0b772f05f9d21573abf6955e7b6fb5fdb893760cca10e8
org.reactivestreams:reactive-streams:1.0.4 f75ca597789b3dac58f61857b9ac2e1034a68fa672db35055a8fb4509e325f28
software.amazon.eventstream:eventstream:1.0.1 0c37d8e696117f02c302191b8110b0d0eb20fa412fce34c3a269ec73c16ce822
"
ALL_JARS="$JARS$S3_JARS"

say() { printf '[setup] %s\n' "$*" >&2; }

dir="$root/.build/spark-jars"
stamp="$dir/.sde-stamp"
want="$(printf '%s' "$ALL_JARS" | sha256sum | cut -c1-16)"

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
    done <<<"$ALL_JARS"
}

if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && all_present; then
    exit 0
fi

command -v java >/dev/null || say "warning: no java on PATH; Spark needs Java 17 or newer to run"
command -v curl >/dev/null || { say "needs curl to fetch the Delta and S3A jars from Maven Central"; exit 1; }
mkdir -p "$dir"
rm -f "$stamp"
say "fetching the Delta and S3A jars for Spark from Maven Central (about 26 MB, once)"
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
    # The strongest checksum Central publishes beside the jar: SHA-512 for most; a few
    # older uploads (hadoop-aws 3.5.0: SHA-1 only; eventstream, reactive-streams: SHA-256)
    # have less. The pinned SHA-256 below is the lock either way.
    checked=""
    for algorithm in 512 256 1; do
        published="$(curl -sSfL --retry 3 -m 60 "$url.sha$algorithm" 2>/dev/null)" || continue
        digits=$((algorithm == 1 ? 40 : algorithm / 4))
        published="$(printf '%s' "$published" | cut -c1-"$digits")"
        if [ "$("sha${algorithm}sum" "$tmp" | cut -c1-"$digits")" != "$published" ]; then
            say "$name does not match the SHA-$algorithm Maven Central publishes: refused"
            rm -f "$tmp"
            exit 1
        fi
        checked="$algorithm"
        break
    done
    if [ -z "$checked" ]; then
        say "could not download a published checksum of $url: refused"
        rm -f "$tmp"
        exit 1
    fi
    if [ "$(sha256sum "$tmp" | cut -c1-64)" != "$sha" ]; then
        say "$name does not match its pinned SHA-256 in scripts/setup_spark.sh: refused"
        rm -f "$tmp"
        exit 1
    fi
    mv "$tmp" "$dir/$name"
done <<<"$ALL_JARS"

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
