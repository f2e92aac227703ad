#ifndef GREET_H
#define GREET_H

/* Writes "Hello, <name>!" and a newline to standard output. */
void greet(const char *name);

#endif
