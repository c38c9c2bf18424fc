/* A static program so the example runs in an engine without a distribution. */
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  const char *g = getenv("GREETING");
  FILE *f = fopen("/opt/hello/share/message.txt", "r");
  char buf[256] = "";
  if (f) { if (!fgets(buf, sizeof buf, f)) buf[0] = 0; fclose(f); }
  printf("%s from layerfold: %s", g ? g : "hi", buf);
  for (int i = 1; i < argc; i++) printf("arg: %s\n", argv[i]);
  return 0;
}
