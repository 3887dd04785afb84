#include <cstdio>
int main() { std::puts("lumen"); return 0; }
