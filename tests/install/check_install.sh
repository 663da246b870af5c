#!/bin/sh
# Installs mapkv with `cmake --install --prefix` into a prefix other than the
# one it was configured for, then moves the installed tree elsewhere, and
# builds a separate project against it there: through find_package(mapkv)
# and through pkg-config, shared and static. Checks that only the public
# API is exported, that nothing of libxxhash is needed (the library compiles
# xxHash in), and that the library's man page is installed.
# usage: check_install.sh SOURCE_DIR WORK_DIR C_COMPILER
set -eu
src=$1 work=$2 cc=$3
rm -rf "$work"
mkdir -p "$work"
# Configured for one prefix, installed into another, used from a third.
configured=$work/configured-prefix
staged=$work/staged
prefix=$work/prefix
cmake -S "$src" -B "$work/build" -DCMAKE_INSTALL_PREFIX="$configured" \
  -DCMAKE_C_COMPILER="$cc" -DMAPKV_BUILD_TESTS=OFF -DMAPKV_BUILD_TOOLS=OFF \
  -DCMAKE_BUILD_TYPE=Release >"$work/configure.log" 2>&1
cmake --build "$work/build" -j2 >"$work/build.log" 2>&1
cmake --install "$work/build" --prefix "$staged" >"$work/install.log" 2>&1
if [ -e "$configured" ]; then
  echo "the install wrote into the configure-time prefix $configured"; exit 1
fi
if grep -r -l -F -e "$staged" -e "$configured" "$staged" >"$work/mentions.log"; then
  echo "installed files name an absolute prefix (not relocatable):"
  cat "$work/mentions.log"; exit 1
fi
mv "$staged" "$prefix"

# Only the public API is exported from the shared library.
lib=$(ls "$prefix"/lib*/libmapkv.so* "$prefix"/lib/*/libmapkv.so* 2>/dev/null | head -n 1)
leaked=$(nm -D --defined-only "$lib" | awk '{print $3}' |
  grep -v -E '^(mmf_[a-z]|mapkv_[a-z]|MAPKV_0$)' || true)
if [ -n "$leaked" ]; then
  echo "symbols exported beyond the public API:"; echo "$leaked"; exit 1
fi
nm -D --defined-only "$lib" | grep -q -E ' T mapkv_version(@@MAPKV_0)?$' ||
  { echo "mapkv_version is not exported"; exit 1; }
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
case $soname in libmapkv.so.[0-9]*) ;; *) echo "bad SONAME '$soname'"; exit 1 ;; esac

# xxHash is compiled in: no run-time need of libxxhash, no symbol of it left
# undefined in either library, no mention of it in the package files.
libdir=$(dirname "$lib")
if objdump -p "$lib" | grep NEEDED | grep -q -i xxhash; then
  echo "libmapkv.so needs libxxhash:"; objdump -p "$lib" | grep NEEDED; exit 1
fi
if nm -u "$lib" "$libdir/libmapkv.a" 2>/dev/null | grep -i ' U XXH'; then
  echo "xxHash symbols left for the linker to find"; exit 1
fi
if grep -r -i -l xxhash "$libdir/pkgconfig" "$libdir/cmake"; then
  echo "the installed package depends on xxHash"; exit 1
fi

# The library's man page.
test -s "$prefix/share/man/man3/mapkv.3" ||
  { echo "share/man/man3/mapkv.3 is not installed"; exit 1; }

mkdir -p "$work/consumer"
cat >"$work/consumer/main.c" <<'C'
#include <mapkv/mapkv.h>
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
  if (strcmp(mapkv_version(), MAPKV_VERSION_STRING) != 0)
    return 4;
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
LD_LIBRARY_PATH=$libdir "$work/consumer/build/consumer_shared"
"$work/consumer/build/consumer_static"

# pkg-config, shared and static
export PKG_CONFIG_PATH=$libdir/pkgconfig
# Its directories are those of the moved tree.
real() { (cd "$1" && pwd -P); }
for v in includedir:"$prefix/include" libdir:"$libdir"; do
  got=$(pkg-config --variable="${v%%:*}" mapkv)
  if [ ! -d "$got" ] || [ "$(real "$got")" != "$(real "${v#*:}")" ]; then
    echo "pkg-config's ${v%%:*} is '$got', not ${v#*:}"; exit 1
  fi
done
test "$(pkg-config --modversion mapkv)" = "$(sed -n 's/^Version: //p' "$libdir/pkgconfig/mapkv.pc")"
"$cc" -o "$work/consumer/pc_shared" "$work/consumer/main.c" $(pkg-config --cflags --libs mapkv)
LD_LIBRARY_PATH=$libdir "$work/consumer/pc_shared"
"$cc" -static-libgcc -o "$work/consumer/pc_static" "$work/consumer/main.c" \
  $(pkg-config --cflags mapkv) "$libdir/libmapkv.a" $(pkg-config --static --libs-only-l mapkv | sed 's/-lmapkv//')
"$work/consumer/pc_static"
echo "install check passed"
