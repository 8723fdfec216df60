#!/usr/bin/env bash
# Checks the tools deepsift needs outside Python and names what to install when one is missing.
# Usage: check_prereqs.sh java|javac|ffmpeg|chromium ...
set -euo pipefail
for tool in "$@"; do
  case "$tool" in
    java)
      java_bin="${JAVA_HOME:+$JAVA_HOME/bin/}java"
      if ! command -v "$java_bin" >/dev/null 2>&1; then
        echo "Java 17 or newer is required by Spark: install it (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME" >&2
        exit 1
      fi
      major=$("$java_bin" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
      if [ "${major%%.*}" -lt 17 ] 2>/dev/null; then
        echo "Java $major found, Spark 4 needs 17 or newer: install openjdk-17-jre-headless or point JAVA_HOME at a newer JDK" >&2
        exit 1
      fi ;;
    javac)
      javac_bin="${JAVA_HOME:+$JAVA_HOME/bin/}javac"
      if ! command -v "$javac_bin" >/dev/null 2>&1; then
        echo "javac (JDK 17 or newer) is required once to build deepsift's read-only SQL extension: install it (Debian: apt-get install openjdk-17-jdk-headless) or point JAVA_HOME at a JDK" >&2
        exit 1
      fi
      major=$("$javac_bin" -version 2>&1 | awk '{print $2}')
      if [ "${major%%.*}" -lt 17 ] 2>/dev/null; then
        echo "javac $major found, deepsift needs 17 or newer: install openjdk-17-jdk-headless or point JAVA_HOME at a newer JDK" >&2
        exit 1
      fi ;;
    ffmpeg)
      command -v ffmpeg >/dev/null 2>&1 || {
        echo "the tests encode video with FFmpeg: install it (Debian: apt-get install ffmpeg)" >&2; exit 1; } ;;
    chromium)
      command -v chromium >/dev/null 2>&1 || {
        echo "the report tests render pages in headless Chromium: install it (Debian: apt-get install chromium)" >&2; exit 1; } ;;
    *) echo "check_prereqs.sh: unknown tool $tool" >&2; exit 2 ;;
  esac
done
