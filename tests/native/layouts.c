/* Types whose PDB layout the tests check against clang's own record layout. */
#include <stddef.h>

typedef enum _COLOR { Red = 0, Green = 5, Blue = -1, Big = 0x7fffffff } COLOR;

typedef struct _FLAGS {
    unsigned int Low : 3;
    unsigned int Mid : 7;
    unsigned int High : 22;
    unsigned char Byte;
    unsigned long long Wide : 40;
    unsigned long long Rest : 24;
} FLAGS;

typedef union _VALUE {
    long long AsQuad;
    struct {
        unsigned int LowPart;
        int HighPart;
    } u;
    double AsDouble;
    unsigned char Bytes[8];
} VALUE;

typedef int (*CALLBACK)(void *context, unsigned long code);

typedef struct _OUTER {
    struct _OUTER *Next;
    struct _INNER {
        short A;
        char B[3];
        COLOR Color;
    } Inner;
    int Grid[3][5];
    VALUE Values[2];
    CALLBACK Callback;
    void (*Handlers[4])(int);
    FLAGS Flags;
    unsigned short Tail : 1;
} OUTER;

struct _ONLY_FORWARD;
typedef struct _USES_FORWARD {
    struct _ONLY_FORWARD *Opaque;
    char Last;
} USES_FORWARD;

__declspec(dllexport) OUTER g_outer;
__declspec(dllexport) USES_FORWARD g_uses;
__declspec(dllexport) int ExportedFunction(OUTER *o) { return o->Grid[1][2] + (int)o->Flags.Mid; }
static int helper(int x) { return x * 3; }
__declspec(dllexport) int CallsHelper(int x) { return helper(x) + 1; }

#if defined(_M_IX86)
__declspec(dllexport) int __stdcall StdcallFunction(int a, int b) { return a - b; }
__declspec(dllexport) int __fastcall FastcallFunction(int a, int b) { return a ^ b; }
#endif
