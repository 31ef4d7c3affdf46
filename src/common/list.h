/* The one intrusive doubly linked list, and the container-of cast. */
#ifndef PROA_LIST_H
#define PROA_LIST_H

#include <stdbool.h>
#include <stddef.h>

/* The struct of type `type` whose member `member` is at `ptr`. */
#define PROA__CONTAINER(ptr, type, member)                                     \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/*
 * A node embedded in each member; the list is a head pointer, so an empty
 * list is all zeros. Insertion is at the front and removal is O(1); a node
 * that is in no list has prev == next == NULL and is not the head.
 */
typedef struct proa__list_node {
  struct proa__list_node *prev, *next;
} proa__list_node;

typedef struct proa__list {
  proa__list_node *head;
} proa__list;

static inline bool proa__list_empty(const proa__list *l) { return !l->head; }

static inline bool proa__list_linked(const proa__list *l,
                                     const proa__list_node *n) {
  return n->prev || l->head == n;
}

static inline void proa__list_push(proa__list *l, proa__list_node *n) {
  n->prev = NULL;
  n->next = l->head;
  if (l->head)
    l->head->prev = n;
  l->head = n;
}

/* Takes `n` out of `l`; a node in no list is left alone. */
static inline void proa__list_remove(proa__list *l, proa__list_node *n) {
  if (!proa__list_linked(l, n))
    return;
  if (n->prev)
    n->prev->next = n->next;
  else
    l->head = n->next;
  if (n->next)
    n->next->prev = n->prev;
  n->prev = n->next = NULL;
}

#endif /* PROA_LIST_H */
