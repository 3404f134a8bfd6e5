package cluster

import (
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
)

// FileServer serves one file over HTTPS on a free loopback port, with a certificate from its own test CA.
type FileServer struct {
	URL    string // https://127.0.0.1:PORT/<name>
	CAFile string // the test CA, for SSL_CERT_FILE
	srv    *http.Server
}

// ServeFile starts the server; the CA is written to dir.
func ServeFile(dir, path string) (*FileServer, error) {
	ca, err := newCA("guardrails-e2e-download-ca")
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.issue("127.0.0.1", nil, true, nil)
	if err != nil {
		return nil, err
	}
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	caFile := filepath.Join(dir, "download-ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	name := filepath.Base(path)
	mux := http.NewServeMux()
	mux.HandleFunc("/"+name, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{kp}}}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	return &FileServer{URL: "https://" + l.Addr().String() + "/" + name, CAFile: caFile, srv: srv}, nil
}

// Close stops the server.
func (f *FileServer) Close() { _ = f.srv.Close() }
