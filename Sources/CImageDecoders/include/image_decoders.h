#ifndef DISTILL_IMAGE_DECODERS_H
#define DISTILL_IMAGE_DECODERS_H
/* Decodes a JPEG held in memory into 8-bit pixels with `channels` (1 grey or 3 RGB) per pixel, through libjpeg. Returns
   0 on success and fills *width, *height, *pixels (malloc'd, the caller frees); on failure returns -1 and writes
   libjpeg's message into `message` (at most `capacity` bytes). A corrupt file never ends the process: libjpeg's fatal
   errors come back here through setjmp/longjmp inside this C function, never across Swift frames. */
int distill_decode_jpeg(const unsigned char *data, unsigned long size, int channels, int *width, int *height,
                        unsigned char **pixels, char *message, int capacity);
#endif
