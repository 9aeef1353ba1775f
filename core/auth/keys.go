package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Algorithms a Verifier can be pinned to.
const (
	AlgHS256 = "HS256"
	AlgRS256 = "RS256"
	AlgES256 = "ES256"
	AlgES384 = "ES384"
	AlgES512 = "ES512"
	AlgEdDSA = "EdDSA"
)

// MinRSABits is the smallest RSA modulus a Verifier accepts.
const MinRSABits = 2048

// parsePublicKeyPEM reads the first PEM block of data and returns the
// public key in it with the one algorithm that key may verify. It accepts
// PKIX "PUBLIC KEY", PKCS #1 "RSA PUBLIC KEY" and "CERTIFICATE" blocks.
func parsePublicKeyPEM(data []byte) (crypto.PublicKey, string, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, "", errors.New("auth: public key: no PEM block found")
	}
	var (
		key any
		err error
	)
	switch {
	case block.Type == "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case block.Type == "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case block.Type == "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	case strings.Contains(block.Type, "PRIVATE KEY"):
		return nil, "", errors.New("auth: public key: got a private key; configure the public key only")
	default:
		return nil, "", fmt.Errorf("auth: public key: unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("auth: public key: %w", err)
	}
	return algorithmFor(key)
}

// algorithmFor pins the JWT algorithm for a public key by its type (and,
// for ECDSA, its curve).
func algorithmFor(key any) (crypto.PublicKey, string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return nil, "", fmt.Errorf("auth: public key: RSA key has %d bits, want at least %d", k.N.BitLen(), MinRSABits)
		}
		return k, AlgRS256, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return k, AlgES256, nil
		case elliptic.P384():
			return k, AlgES384, nil
		case elliptic.P521():
			return k, AlgES512, nil
		}
		return nil, "", fmt.Errorf("auth: public key: unsupported ECDSA curve %s", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return k, AlgEdDSA, nil
	}
	return nil, "", fmt.Errorf("auth: public key: unsupported key type %T", key)
}
