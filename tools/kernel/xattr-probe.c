// Tiny setxattr/getxattr tool for the kernel smoke test: busybox has no getfattr/setfattr, and
// the attr package is not a dependency. Built statically by tools/kernel/smoke-test.
//   xattr-probe set FILE NAME VALUE
//   xattr-probe get FILE NAME        (prints the value, exit 1 if absent)
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "set") == 0) {
    if (lsetxattr(argv[2], argv[3], argv[4], strlen(argv[4]), 0) != 0) {
      perror("setxattr");
      return 1;
    }
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "get") == 0) {
    char value[4096];
    ssize_t n = lgetxattr(argv[2], argv[3], value, sizeof value - 1);
    if (n < 0) {
      perror("getxattr");
      return 1;
    }
    value[n] = '\0';
    printf("%s\n", value);
    return 0;
  }
  fprintf(stderr, "usage: xattr-probe set FILE NAME VALUE | get FILE NAME\n");
  return 2;
}
