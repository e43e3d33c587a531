package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// flexID is a worker id the admin API may render as a number or a string.
type flexID string

// UnmarshalJSON accepts 3 as well as "3".
func (f *flexID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("worker id %s: %w", b, err)
	}
	*f = flexID(n.String())
	return nil
}

// workerInfo is one entry of GET /admin/workers.
type workerInfo struct {
	ID       flexID `json:"id"`
	Kind     string `json:"kind"`
	PID      int    `json:"pid"`
	State    string `json:"state"`
	Restarts int    `json:"restarts"`
}

// workersDoc is the body of GET /admin/workers.
type workersDoc struct {
	Workers []workerInfo `json:"workers"`
	Totals  struct {
		Workers int `json:"workers"`
		Healthy int `json:"healthy"`
	} `json:"totals"`
}

// live returns the workers that are not stopped.
func (d workersDoc) live() []workerInfo {
	var out []workerInfo
	for _, w := range d.Workers {
		if w.State != "stopped" {
			out = append(out, w)
		}
	}
	return out
}

// getWorkers fetches GET /admin/workers.
func getWorkers(adminURL string) (workersDoc, error) {
	var doc workersDoc
	resp, err := localClient.Get(adminURL + "/admin/workers")
	if err != nil {
		return doc, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return doc, err
	}
	if resp.StatusCode != http.StatusOK {
		return doc, fmt.Errorf("GET /admin/workers: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return doc, fmt.Errorf("GET /admin/workers: %w", err)
	}
	return doc, nil
}

// postAdmin sends POST adminURL+path with a JSON body and wants a 2xx.
func postAdmin(adminURL, path string, body any) error {
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			return err
		}
	}
	resp, err := localClient.Post(adminURL+path, "application/json", &buf)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// scaleBody is the body of POST /admin/scale.
func scaleBody(n int) map[string]int { return map[string]int{"workers": n} }
