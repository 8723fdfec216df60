#!/usr/bin/env bash
# Downloads the jars pinned in infra/docker/jars.txt into a folder on Spark's classpath, checking
# each against its pinned SHA-1; a jar already there with the right checksum is kept.
#
#   bash infra/docker/fetch_jars.sh DEST_DIR [MAVEN_REPO]
#
# The image runs it with DEST_DIR=$SPARK_HOME/jars. On a pip install of pyspark, give it the
# wheel's jars folder:
#   bash infra/docker/fetch_jars.sh "$(.venv/bin/python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')/jars"
# MAVEN_REPO defaults to Maven Central; a mirror with the same layout works.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${1:?usage: fetch_jars.sh DEST_DIR [MAVEN_REPO]}"
repo="${2:-https://repo1.maven.org/maven2}"
repo="${repo%/}"
mkdir -p "$dest"

checksum_ok() {  # sha1, file
  [ "$(sha1sum "$2" | cut -d' ' -f1)" = "$1" ]
}

while read -r coordinate sha1 _; do
  case "$coordinate" in '' | '#'*) continue ;; esac
  IFS=: read -r group artifact version <<<"$coordinate"
  if [ -z "$version" ] || [ "${#sha1}" -ne 40 ]; then
    echo "fetch_jars.sh: bad line in jars.txt: $coordinate $sha1" >&2
    exit 1
  fi
  name="$artifact-$version.jar"
  if [ -f "$dest/$name" ] && checksum_ok "$sha1" "$dest/$name"; then
    echo "$name: present"
    continue
  fi
  url="$repo/${group//.//}/$artifact/$version/$name"
  partial="$(mktemp "$dest/.$name.XXXXXX")"
  if ! curl --fail --silent --show-error --location --retry 3 --output "$partial" "$url"; then
    rm -f "$partial"
    echo "fetch_jars.sh: cannot download $url" >&2
    exit 1
  fi
  if ! checksum_ok "$sha1" "$partial"; then
    rm -f "$partial"
    echo "fetch_jars.sh: $url does not have the pinned SHA-1 $sha1" >&2
    exit 1
  fi
  chmod 0644 "$partial"
  mv "$partial" "$dest/$name"
  echo "$name: downloaded"
done <"$here/jars.txt"
