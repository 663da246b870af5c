#!/bin/sh
# Installs mapkv into a scratch prefix and builds a separate project against
# it twice: once through find_package(mapkv), once through pkg-config.
# usage: check_install.sh SOURCE_DIR WORK_DIR C_COMPILER
set -eu
src=$1 work=$2 cc=$3
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
cmake -S "$src" -B "$work/build" -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DCMAKE_C_COMPILER="$cc" -DMAPKV_BUILD_TESTS=OFF -DMAPKV_BUILD_TOOLS=OFF \
  -DCMAKE_BUILD_TYPE=Release >"$work/configure.log" 2>&1
cmake --build "$work/build" -j2 >"$work/build.log" 2>&1
cmake --install "$work/build" >"$work/install.log" 2>&1

# Only the public API is exported from the shared library.
lib=$(ls "$prefix"/lib*/libmapkv.so* "$prefix"/lib/*/libmapkv.so* 2>/dev/null | head -n 1)
leaked=$(nm -D --defined-only "$lib" | awk '{print $3}' |
  grep -v -E '^(mmf_[a-z]|mapkv_[a-z]|MAPKV_0$)' || true)
if [ -n "$leaked" ]; then
  echo "symbols exported beyond the public API:"; echo "$leaked"; exit 1
fi
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
case $soname in libmapkv.so.[0-9]*) ;; *) echo "bad SONAME '$soname'"; exit 1 ;; esac

mkdir -p "$work/consumer"
cat >"$work/consumer/main.c" <<'C'
#include <mapkv/mmf.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  mmf_t *m = NULL;
  int64_t at = -2;
  if (mmf_open(&m, -1, 8192, MMF_MAP_PRIVATE, MMF_PROT_READ | MMF_PROT_WRITE,
               MMF_ACCESS_DEFAULT, 0, 1) != 0)
    return 1;
  if (mmf_write(m, "consumer", 8) != 8)
    return 2;
  if (mmf_find(m, "sum", 3, &(int64_t){0}, NULL, &at) != 0 || at != 3)
    return 3;
  mmf_free(m);
  puts("consumer ok");
  return 0;
}
C
cat >"$work/consumer/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(mapkv REQUIRED)
add_executable(consumer_shared main.c)
target_link_libraries(consumer_shared PRIVATE mapkv::mapkv)
add_executable(consumer_static main.c)
target_link_libraries(consumer_static PRIVATE mapkv::mapkv_static)
C
cmake -S "$work/consumer" -B "$work/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" >"$work/consumer.log" 2>&1
cmake --build "$work/consumer/build" >>"$work/consumer.log" 2>&1
LD_LIBRARY_PATH=$(dirname "$lib") "$work/consumer/build/consumer_shared"
"$work/consumer/build/consumer_static"

# pkg-config, shared and static
export PKG_CONFIG_PATH=$(dirname "$lib")/pkgconfig
"$cc" -o "$work/consumer/pc_shared" "$work/consumer/main.c" $(pkg-config --cflags --libs mapkv)
LD_LIBRARY_PATH=$(dirname "$lib") "$work/consumer/pc_shared"
"$cc" -static-libgcc -o "$work/consumer/pc_static" "$work/consumer/main.c" \
  $(pkg-config --cflags mapkv) "$(dirname "$lib")/libmapkv.a" $(pkg-config --static --libs-only-l mapkv | sed 's/-lmapkv//')
"$work/consumer/pc_static"
echo "install check passed"
