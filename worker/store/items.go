package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MaxNameLen is the most characters (runes) an item's name may have.
const MaxNameLen = 200

// Item is a row of the items table, as the API shows it.
type Item struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateItem stores a new item named name (already validated) and returns it.
func (db *Postgres) CreateItem(ctx context.Context, name string) (Item, error) {
	var it Item
	err := db.run(ctx, "creating an item", func(ctx context.Context, c *pgxpool.Conn) error {
		return c.QueryRow(ctx, "INSERT INTO items (name) VALUES ($1) RETURNING id, name, created_at", name).
			Scan(&it.ID, &it.Name, &it.CreatedAt)
	})
	it.CreatedAt = it.CreatedAt.UTC()
	return it, err
}

// Item returns the item id, or ErrNotFound.
func (db *Postgres) Item(ctx context.Context, id int64) (Item, error) {
	var it Item
	err := db.run(ctx, "reading an item", func(ctx context.Context, c *pgxpool.Conn) error {
		return c.QueryRow(ctx, "SELECT id, name, created_at FROM items WHERE id = $1", id).
			Scan(&it.ID, &it.Name, &it.CreatedAt)
	})
	it.CreatedAt = it.CreatedAt.UTC()
	return it, err
}

// Items returns up to limit items with ids above after, in id order, and
// whether more follow.
func (db *Postgres) Items(ctx context.Context, after int64, limit int) ([]Item, bool, error) {
	var items []Item
	err := db.run(ctx, "listing items", func(ctx context.Context, c *pgxpool.Conn) error {
		rows, _ := c.Query(ctx, "SELECT id, name, created_at FROM items WHERE id > $1 ORDER BY id LIMIT $2", after, limit+1)
		var err error
		items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Item, error) {
			var it Item
			err := r.Scan(&it.ID, &it.Name, &it.CreatedAt)
			it.CreatedAt = it.CreatedAt.UTC()
			return it, err
		})
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if len(items) > limit {
		return items[:limit], true, nil
	}
	return items, false, nil
}

// DeleteItem removes the item id, or returns ErrNotFound.
func (db *Postgres) DeleteItem(ctx context.Context, id int64) error {
	return db.run(ctx, "deleting an item", func(ctx context.Context, c *pgxpool.Conn) error {
		tag, err := c.Exec(ctx, "DELETE FROM items WHERE id = $1", id)
		if err == nil && tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		return err
	})
}
